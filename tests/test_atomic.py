"""core.atomic: a write is all or nothing, leaves no temporary file, and keeps the suffix."""

from __future__ import annotations

from pathlib import Path

import pytest

from medseg_gui.core.atomic import atomic_path, write_bytes


@pytest.mark.parametrize("durable", [False, True])
def test_write_replaces_the_file_and_leaves_nothing_else(tmp_path: Path, durable: bool) -> None:
    target = tmp_path / "sub" / "card.json"
    write_bytes(target, b"old", durable=durable)
    write_bytes(target, b"new", durable=durable)
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["card.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "weights.safetensors"
    target.write_bytes(b"what the user had")
    with pytest.raises(RuntimeError), atomic_path(target, durable=True) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"what the user had"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.safetensors"]


def test_the_temporary_name_keeps_the_suffix(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "mask.nii.gz", ".nii.gz") as tmp:
        assert tmp.name.endswith(".nii.gz") and tmp.parent == tmp_path
        tmp.write_bytes(b"x")
    assert (tmp_path / "mask.nii.gz").read_bytes() == b"x"
