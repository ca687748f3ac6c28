"""``medseg segment`` / ``build-engine`` through :func:`add_commands` (wired into cli.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from medseg_gui.inference.commands import add_commands
from medseg_gui.inference.models import resolve_model
from medseg_gui.io.errors import LoadError
from medseg_gui.io.imagefile import read_image, write_image
from tests.test_inference import ct_like, make_card


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="medseg")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


@pytest.fixture()
def engines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "engines"
    for version in ("0.9.0", "0.10.0"):
        make_card(root / "sts-tumour-unet" / version, model_id="sts-tumour-unet",
                  version=version)
    monkeypatch.setenv("MEDSEG_ENGINES", str(root))
    return root


def test_resolve_model_picks_the_highest_version(engines: Path) -> None:
    assert resolve_model().ref == "sts-tumour-unet:0.10.0"  # 10 > 9, not "1" < "9"
    assert resolve_model("sts-tumour-unet:0.9.0").ref == "sts-tumour-unet:0.9.0"
    assert resolve_model(str(engines / "sts-tumour-unet" / "0.9.0")).version == "0.9.0"
    with pytest.raises(LoadError, match=r"models found: sts-tumour-unet:0.10.0"):
        resolve_model("nope:1.0")


def test_segment_writes_mask_and_probability(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "m"
    make_card(folder)
    ct = tmp_path / "ct.nii.gz"
    write_image(ct_like(), ct)
    mask, prob = tmp_path / "mask.nii.gz", tmp_path / "prob.nii.gz"
    assert run("segment", str(ct), "-o", str(mask), "--model", str(folder),
               "--backend", "torch", "--device", "cpu", "--probability", str(prob)) == 0
    out = capsys.readouterr().out
    assert "torch fp32 on cpu" in out and "tiny-unet:0.1.0" in out
    m, p = read_image(mask), read_image(prob)
    assert m.shape == p.shape == ct_like().shape
    assert set(np.unique(m.array)) <= {0, 1}
    assert np.array_equal(m.array > 0, p.array >= 0.5)
    with pytest.raises(LoadError, match="output exists"):
        run("segment", str(ct), "-o", str(mask), "--model", str(folder))


def test_segment_errors_are_load_errors(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="no model"):
        run("segment", str(tmp_path / "ct.nii.gz"), "-o", str(tmp_path / "m.nii.gz"),
            "--model", "missing-model", "--backend", "torch")


def test_build_engine_without_tensorrt_says_so(engines: Path) -> None:
    pytest.importorskip("torch")
    with pytest.raises(LoadError, match="TensorRT is not installed"):
        run("build-engine", "--model", "sts-tumour-unet")
