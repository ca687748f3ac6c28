"""``medseg queue add|list|show|remove`` through the commands' own parser."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.volume import Volume
from medseg_gui.io.errors import LoadError
from medseg_gui.io.imagefile import read_image, write_image
from medseg_gui.training.queue_commands import add_commands, correction_effort


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="medseg")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_correction_effort() -> None:
    draft = np.zeros((4, 4, 4), np.uint8)
    draft[1:3, 1:3, 1:3] = 1  # 8 voxels
    corrected = draft.copy()
    corrected[1, 1, 1] = 0
    corrected[0, 0, 0:2] = 1
    e = correction_effort(draft, corrected, 12.5)
    assert (e.voxels_added, e.voxels_removed, e.editing_seconds) == (2, 1, 12.5)
    assert e.dice_draft_vs_corrected == pytest.approx(2 * 7 / (8 + 9))
    assert correction_effort(None, corrected).voxels_added == 9


def test_queue_commands(shared_data: Path, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    study = shared_data / "ibsi_sts" / "dicom" / "STS_008" / "CT" / "image"
    mask = shared_data / "ibsi_sts" / "nifti" / "STS_008" / "CT_mask.nii.gz"
    gt = read_image(mask)
    draft = gt.with_array(np.roll(gt.array, 2, axis=2))
    write_image(draft, tmp_path / "draft.nii.gz")
    assert _cli(["queue", "add", str(study), "--mask", str(mask), "--draft",
                 str(tmp_path / "draft.nii.gz"), "--model", "sts-tumour:1.0.0",
                 "--annotator", "reader-1", "--editing-seconds", "42", "--any-status"]) == 0
    assert capsys.readouterr().out.startswith("queued item 1 (case ")
    assert _cli(["queue", "list"]) == 0
    out = capsys.readouterr().out
    assert "sts-tumour:1.0.0" in out and "reader-1" in out and "1 item(s)" in out
    assert _cli(["queue", "show", "1"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["effort"]["editing_seconds"] == 42.0
    assert 0 < shown["effort"]["dice_draft_vs_corrected"] < 1
    assert shown["metadata"]["Modality"] == "CT" and shown["metadata"]["sop_instance_uids"] == 51
    assert _cli(["queue", "list", "--json", "--status", "queued"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1
    assert _cli(["queue", "remove", "1"]) == 0
    with pytest.raises(LoadError, match="no queue item 1"):
        _cli(["queue", "show", "1"])


def test_queue_add_rejects_mask_of_another_grid(shared_data: Path, tmp_path: Path) -> None:
    study = shared_data / "ibsi_sts" / "dicom" / "STS_008" / "CT" / "image"
    other = Volume(np.zeros((5, 6, 7), np.uint8), Geometry((5, 6, 7), (1.0, 1.0, 1.0)))
    write_image(other, tmp_path / "small.nii.gz")
    with pytest.raises(LoadError, match="is not the study's grid"):
        _cli(["queue", "add", str(study), "--mask", str(tmp_path / "small.nii.gz")])
    assert _cli(["queue", "list", "--json"]) == 0
