"""The headless ``medseg`` commands, run as a user runs them (a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from medseg_gui.io.imagefile import read_image
from medseg_gui.io.loader import load_volume
from medseg_gui.resources import DEMO_STUDY


def medseg(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "medseg_gui.cli", *args],
                          capture_output=True, text=True, timeout=120)


def test_info_prints_json_summary() -> None:
    res = medseg("info", str(DEMO_STUDY))
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["size_ijk"] == [141, 137, 51]
    assert info["modality"] == "CT"
    assert info["orientation"] == "LPS"
    assert info["series_uid"].startswith("1.")
    assert info["warnings"] == []


def test_info_on_folder_of_several_series_lists_them(shared_data: Path) -> None:
    res = medseg("info", str(shared_data / "dcmqi_seg" / "segmentations" / "23x38x3"))
    assert res.returncode == 0
    tree = json.loads(res.stdout)
    labels = [s["label"] for s in tree["patients"][0]["studies"][0]["series"]]
    assert len(labels) >= 2


def test_convert_writes_and_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "ct.nrrd"
    res = medseg("convert", str(DEMO_STUDY), str(out))
    assert res.returncode == 0, res.stderr
    np.testing.assert_array_equal(read_image(out).array, load_volume(DEMO_STUDY).array)
    again = medseg("convert", str(DEMO_STUDY), str(out))
    assert again.returncode == 2
    assert "--force" in again.stderr


def test_bad_input_is_one_line_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "scan.dcm"
    bad.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00garbage")
    for args in (("info", str(bad)), ("info", str(tmp_path / "nope")),
                 ("convert", str(tmp_path), str(tmp_path / "x.nii.gz"))):
        res = medseg(*args)
        assert res.returncode == 2
        assert "Traceback" not in res.stderr
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("medseg: error: "), res.stderr
