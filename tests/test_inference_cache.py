"""The TensorRT plan cache, with a fake builder: reuse, stale and corrupt plans rebuilt."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from medseg_gui.inference.engine_cache import (
    EngineKey,
    engines_cache_dir,
    load_or_build,
    plan_path,
    prune,
    read_plan,
)

KEY = EngineKey(onnx_sha256="ab" * 32, gpu_name="NVIDIA H200", compute_capability="9.0",
                tensorrt_version="10.3.0", precision="fp16", model="sts-tumour-unet:1.0.0")


class FakeBuilder:
    """Stands in for TensorRT's builder: counts calls, returns distinct bytes each time."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> bytes:
        self.calls += 1
        return f"serialized engine #{self.calls} ".encode() * 100


def test_plan_is_built_once_then_reused(medseg_home: Path) -> None:
    build = FakeBuilder()
    plan, built = load_or_build(KEY, build)
    assert built and build.calls == 1
    again, built = load_or_build(KEY, build)
    assert not built and build.calls == 1 and again == plan
    path = plan_path(KEY)
    assert path.parent == engines_cache_dir() and str(path).startswith(str(medseg_home))
    assert path.name.startswith("sts-tumour-unet_1.0.0-fp16-")
    assert not list(path.parent.glob(".plan.*"))  # no temporary files left behind


@pytest.mark.parametrize("field", ["onnx_sha256", "gpu_name", "compute_capability",
                                   "tensorrt_version", "precision", "max_batch"])
def test_any_change_of_the_key_builds_another_plan(field: str) -> None:
    build = FakeBuilder()
    load_or_build(KEY, build)
    value = 32 if field == "max_batch" else "changed"
    other = dataclasses.replace(KEY, **{field: value})
    assert plan_path(other) != plan_path(KEY)
    _, built = load_or_build(other, build)
    assert built and build.calls == 2
    assert prune(other) == [plan_path(KEY)] or field == "precision"


def test_corrupt_or_stale_plans_are_rebuilt_not_used() -> None:
    build = FakeBuilder()
    plan, _ = load_or_build(KEY, build)
    path = plan_path(KEY)
    data = path.read_bytes()

    path.write_bytes(data[:-10])  # truncated copy
    assert read_plan(path, KEY)[0] is None
    fresh, built = load_or_build(KEY, build)
    assert built and build.calls == 2 and fresh != plan

    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # one flipped bit in the plan
    assert "corrupt" in read_plan(path, KEY)[1]
    assert load_or_build(KEY, build)[1] and build.calls == 3

    # A plan built for another TensorRT copied over this one's name: stale, rebuilt.
    other = dataclasses.replace(KEY, tensorrt_version="10.0.1")
    load_or_build(other, build)
    plan_path(other).replace(path)
    assert "stale" in read_plan(path, KEY)[1]
    assert load_or_build(KEY, build)[1] and build.calls == 5

    path.write_bytes(b"garbage")
    assert "bad magic" in read_plan(path, KEY)[1]
    assert load_or_build(KEY, build)[1] and build.calls == 6


def test_a_plan_tensorrt_cannot_deserialise_is_rebuilt() -> None:
    build = FakeBuilder()
    load_or_build(KEY, build)
    accepted: list[bytes] = []

    def validate(plan: bytes) -> bool:  # "deserialises" only plans from the second build on
        ok = b"#1 " not in plan
        if ok:
            accepted.append(plan)
        return ok

    plan, built = load_or_build(KEY, build, validate=validate)
    assert built and build.calls == 2 and accepted == [plan]
    with pytest.raises(RuntimeError, match="does not deserialise"):
        load_or_build(dataclasses.replace(KEY, precision="int8"), build,
                      validate=lambda plan: False)
