"""A bad-input corpus made from the shared real data, run through the real ``medseg`` commands.

Every case must end in exit code 2 and exactly one stderr line ``medseg: error: PATH: problem``
naming the file, with no traceback and no output written; or, where the input is usable, in a
correct output and a warning. The readers are also called in-process for what the GUI opens
(``load_mask`` is the GUI's ``--labels`` path).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from medseg_gui.core.volume import Volume
from medseg_gui.io.errors import LoadError
from medseg_gui.io.export_commands import FORMATS
from medseg_gui.io.imagefile import read_image, write_image
from medseg_gui.io.loader import load_volume
from medseg_gui.io.masks import load_mask
from tests.bad_input_corpus import (
    MASK_AS_STUDY,
    MASK_CASES,
    MASK_KIND,
    ROOT,
    STS,
    STS_DICOM,
    STUDY_CASES,
    assert_one_error,
    image_2d,
    medseg,
    nan_mask,
    series_with_moved_slice,
    study_for_mask,
    symlink_loop,
)


def _queued() -> list[int]:
    from medseg_gui.training.queue import TrainingQueue

    with TrainingQueue() as q:  # MEDSEG_HOME is the test's own, for the commands too
        return [item.id for item in q.items()]


def study_command(command: str, bad: Path, out: Path, data: Path) -> tuple[str | Path, ...]:
    """The arguments of each command that reads a study, with ``bad`` as the study."""
    return {"info": ("info", bad), "convert": ("convert", bad, out),
            "segment": ("segment", bad, "-o", out),
            "queue add": ("queue", "add", bad, "--mask", data.joinpath(*STS, "CT_mask.nii.gz")),
            }[command]


STUDY_COMMANDS = ("info", "convert", "segment", "queue add")


@pytest.mark.parametrize("command", STUDY_COMMANDS)
@pytest.mark.parametrize("case", sorted(STUDY_CASES))
def test_bad_study(case: str, command: str, shared_data: Path, tmp_path: Path,
                   medseg_home: Path) -> None:
    make, word = STUDY_CASES[case]
    bad = make(shared_data, tmp_path)
    out = tmp_path / "out" / "result.nii.gz"
    run = medseg(*study_command(command, bad, out, shared_data))
    assert_one_error(run, bad, word)
    assert run.stdout == ""
    assert not out.parent.exists() and _queued() == []
    # The user reads one line; the log keeps the details for whoever supports them.
    log = (medseg_home / "logs" / "medseg.log").read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in log and str(bad) in log


@pytest.mark.parametrize("case", sorted(STUDY_CASES))
def test_bad_study_opened_in_the_gui_says_one_line(case: str, shared_data: Path,
                                                   tmp_path: Path) -> None:
    """What the GUI's open path shows (MainWindow's loader is load_volume, off the GUI thread;
    its message box prints ``str(error)``): the same one line as the CLI."""
    make, word = STUDY_CASES[case]
    bad = make(shared_data, tmp_path)
    with pytest.raises(LoadError) as caught:
        load_volume(bad)
    line = str(caught.value)  # names the file, or the one file of the folder at fault
    assert line.startswith(f"{bad}") and word in line and "\n" not in line


@pytest.mark.parametrize("fmt", [*FORMATS, "queue add"])
@pytest.mark.parametrize("case", sorted(MASK_CASES))
def test_bad_mask_is_refused_by_every_export_and_the_queue(case: str, fmt: str,
                                                           shared_data: Path,
                                                           tmp_path: Path) -> None:
    make, word = MASK_CASES[case]
    bad = make(shared_data, tmp_path)
    study = study_for_mask(shared_data, case)
    out = tmp_path / "out" / "exported"
    run = (medseg("queue", "add", study, "--mask", bad) if fmt == "queue add" else
           medseg("export", study, "--mask", bad, "--format", fmt, "-o", out))
    assert_one_error(run, bad, word)
    assert not out.parent.exists() and _queued() == []


@pytest.mark.parametrize("case", sorted(MASK_CASES))
def test_bad_mask_is_refused_by_the_gui(case: str, shared_data: Path, tmp_path: Path) -> None:
    """The GUI's --labels and Open labels call load_mask on the loaded study."""
    make, word = MASK_CASES[case]
    bad = make(shared_data, tmp_path)
    with pytest.raises(LoadError, match=word) as caught:
        load_mask(bad, load_volume(study_for_mask(shared_data, case)))
    assert str(caught.value).startswith(f"{bad}: ")


@pytest.mark.parametrize("command", ["convert", "export", "segment"])
def test_output_under_a_file(command: str, shared_data: Path, tmp_path: Path) -> None:
    study = shared_data.joinpath(*STS, "CT_image.nii.gz")
    blocker = tmp_path / "report.txt"
    blocker.write_text("a file where a folder should be")
    out = blocker / "sub" / "out.nii.gz"
    args: dict[str, tuple[str | Path, ...]] = {
        "convert": ("convert", study, out),
        "export": ("export", study, "--mask", shared_data.joinpath(*STS, "CT_mask.nii.gz"),
                   "--format", "nifti", "-o", out),
        "segment": ("segment", study, "-o", out),
    }
    assert_one_error(medseg(*args[command]), out, "is a file, not a folder")
    assert blocker.read_text() == "a file where a folder should be"


@contextmanager
def read_only_folder(folder: Path) -> Iterator[Path]:
    """A folder this process may not write in. Root may write in any folder by its mode bits,
    so for root the folder is made immutable (``chattr +i``: root gets EPERM), as a read-only
    share would refuse it; skipped where the file system has no such flag (tmpfs)."""
    folder.mkdir(mode=0o500)
    if os.geteuid() != 0:
        yield folder
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip(f"root, and chattr +i does not work on {folder}'s file system")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.mark.skipif(os.name != "posix", reason="permissions as on POSIX")
def test_output_in_a_read_only_folder(shared_data: Path, tmp_path: Path) -> None:
    study = shared_data.joinpath(*STS, "CT_image.nii.gz")
    with read_only_folder(tmp_path / "locked") as folder:
        for args in (("convert", study, folder / "ct.nii.gz"),
                     ("export", study, "--mask", shared_data.joinpath(*STS, "CT_mask.nii.gz"),
                      "--format", "seg-nrrd", "-o", folder / "mask.seg.nrrd"),
                     ("segment", study, "-o", folder / "ai.nii.gz")):
            assert_one_error(medseg(*args), args[-1], "no permission")
        assert list(folder.iterdir()) == []


def test_symlink_loop_in_a_dicom_folder(shared_data: Path, tmp_path: Path) -> None:
    folder = symlink_loop(shared_data, tmp_path)
    # One file of the folder: its series is gathered from the files beside it.
    run = medseg("info", sorted(folder.glob("*.dcm"))[0])
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    assert '"size_ijk"' in run.stdout
    out = tmp_path / "ct.nii.gz"
    run = medseg("convert", folder, out)
    assert run.returncode == 0, run.stderr
    assert "Too many levels of symbolic links" in run.stderr  # the warning names the loop
    assert read_image(out).geometry.shape[0] == 3


def test_closed_pipe_ends_quietly(shared_data: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "medseg_gui.cli", "info",
                             str(shared_data.joinpath(*STS, "CT_image.nii.gz"))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `| head -c 10` that has already left
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1
    assert err == ""


def test_nan_voxels_warn_with_their_count(shared_data: Path, tmp_path: Path) -> None:
    path = nan_mask(shared_data, tmp_path)  # 101 NaN / infinite voxels in a float image
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    volume = read_image(path)
    assert volume.warnings == ("101 voxel(s) are NaN or infinite (not a number); they are shown "
                               "as the lowest value, 0",)
    low = float(np.nanmin(array[np.isfinite(array)]))
    assert np.all(volume.array[0, :10, :10] == low) and volume.array[1, 0, 0] == low
    np.testing.assert_array_equal(volume.array[2:], array[2:])


def test_2d_image_loads_with_a_warning(shared_data: Path, tmp_path: Path) -> None:
    volume = read_image(image_2d(shared_data, tmp_path))
    image = sitk.ReadImage(str(shared_data.joinpath(*STS, "CT_image.nii.gz")))
    assert volume.geometry.shape == (1, *image.GetSize()[1::-1])
    assert any("slice thickness is unknown" in w for w in volume.warnings)


def test_stale_part_files_are_removed_and_outputs_follow_the_umask(shared_data: Path,
                                                                   tmp_path: Path) -> None:
    volume = read_image(shared_data.joinpath(*STS, "CT_image.nii.gz"))
    out = tmp_path / "ct.nii.gz"
    stale = tmp_path / ".ct.nii.gz.abcd1234.part.nii.gz"  # as a killed export leaves it
    stale.write_bytes(b"half an export")
    old = time.time() - 60
    os.utime(stale, (old, old))
    other = tmp_path / ".other.nii.gz.abcd1234.part.nii.gz"  # another target's: kept
    other.write_bytes(b"x")
    os.utime(other, (old, old))
    mask = os.umask(0o027)
    try:
        write_image(volume, out)
    finally:
        os.umask(mask)
    assert not stale.exists()
    assert other.exists()
    assert out.stat().st_mode & 0o777 == 0o640
    np.testing.assert_array_equal(read_image(out).array, volume.array)


def test_model_weights_follow_the_umask_too(tmp_path: Path) -> None:
    from torch import nn

    from medseg_gui.inference.network import save_weights

    mask = os.umask(0o022)
    try:
        save_weights(nn.Linear(2, 2), tmp_path / "weights.safetensors")  # safetensors: 0600
    finally:
        os.umask(mask)
    assert (tmp_path / "weights.safetensors").stat().st_mode & 0o777 == 0o644


# --- a mask given where the study belongs ---------------------------------------------------

@pytest.mark.parametrize(("case", "command"), [
    ("dcmqi SEG", "info"), ("dcmqi SEG", "convert"), ("dcmqi SEG", "segment"),
    ("highdicom SEG", "info"), ("RTSTRUCT", "segment"), ("folder of a SEG", "info"),
])
def test_a_mask_given_as_the_study_is_refused(case: str, command: str, shared_data: Path,
                                              tmp_path: Path) -> None:
    bad = MASK_AS_STUDY[case](shared_data, tmp_path)
    out = tmp_path / "out" / "ct.nii.gz"
    args = {"info": ("info", bad), "convert": ("convert", bad, out),
            "segment": ("segment", bad, "-o", out)}[command]
    line = assert_one_error(medseg(*args), bad)
    if case in MASK_KIND:
        assert line == (f"medseg: error: {bad}: {MASK_KIND[case]}, not an image series; open "
                        "it with --labels on its CT")
    else:
        assert line == (f"medseg: error: {bad}: holds a DICOM SEG (segmentation) but no image "
                        "series; open it with --labels on its CT")
    assert not out.parent.exists()


# --- an export with nothing in it ------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["stl", "obj"])
def test_an_empty_mask_exports_no_surface(fmt: str, shared_data: Path, tmp_path: Path) -> None:
    from medseg_gui.core.segmentation import Segment, Segmentation
    from medseg_gui.io.masks import save_mask

    study = shared_data.joinpath(*STS, "CT_image.nii.gz")
    geometry = read_image(shared_data.joinpath(*STS, "CT_mask.nii.gz")).geometry
    zeros = np.zeros(geometry.shape, np.uint8)
    if fmt == "stl":  # all zeros and no table: a mask without a segment
        empty = write_image(Volume(zeros, geometry), tmp_path / "empty.nii.gz")
        why = "(no segment)"
    else:  # a segment table whose one segment has lost its voxels
        empty = save_mask(Segmentation(zeros, geometry, [Segment(1, "Tumour")]),
                          tmp_path / "empty.seg.nrrd")
        why = "(segment(s) 1 empty)"
    out = tmp_path / ("surfaces" if fmt == "stl" else "tumour.obj")
    run = medseg("export", study, "--mask", empty, "--format", fmt, "-o", out)
    assert_one_error(run, out, "no surface to write: the mask is empty", why)
    assert not out.exists() and run.stdout == ""


@pytest.mark.parametrize("fmt", ["stl", "obj"])
def test_an_empty_segment_beside_a_full_one_is_left_out_and_said(fmt: str, shared_data: Path,
                                                                 tmp_path: Path) -> None:
    from medseg_gui.core.segmentation import Segment, Segmentation
    from medseg_gui.io.masks import save_mask
    from medseg_gui.io.surfaces import read_stl

    study = shared_data.joinpath(*STS, "CT_image.nii.gz")
    tumour = read_image(shared_data.joinpath(*STS, "CT_mask.nii.gz"))
    mask = save_mask(Segmentation((tumour.array > 0).astype(np.uint8), tumour.geometry,
                                  [Segment(1, "Tumour"), Segment(2, "Oedema")]),
                     tmp_path / "two.seg.nrrd")
    out = tmp_path / ("surfaces" if fmt == "stl" else "both.obj")
    run = medseg("export", study, "--mask", mask, "--format", fmt, "-o", out)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.strip() == ("warning: segment 2 (Oedema) is empty: no surface written "
                                  "for it")
    if fmt == "stl":
        assert sorted(p.name for p in out.iterdir()) == ["1_Tumour.stl"]
        assert len(read_stl(out / "1_Tumour.stl")[0]) > 1000
    else:
        objects = [line for line in out.read_text().splitlines() if line.startswith("o ")]
        assert objects == ["o Tumour"]


# --- damaged slice positions -------------------------------------------------------------------

def test_two_slices_at_one_position_are_refused_naming_the_file(shared_data: Path,
                                                                tmp_path: Path) -> None:
    moved = series_with_moved_slice(shared_data, tmp_path, 20, None)
    for args in (("info", moved.parent), ("convert", moved.parent, tmp_path / "o" / "ct.nii")):
        line = assert_one_error(medseg(*args), moved, "0.002 mm from", "at one position")
        assert "mm spacing" in line
    assert not (tmp_path / "o").exists()


def test_a_slice_displaced_by_25_m_is_dropped_with_a_warning(shared_data: Path,
                                                             tmp_path: Path) -> None:
    moved = series_with_moved_slice(shared_data, tmp_path, 20, 25000.0)
    full = load_volume(shared_data.joinpath(*STS_DICOM, "image"))
    out = tmp_path / "ct.nii.gz"
    run = medseg("convert", moved.parent, out)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    far = re.search(rf"{moved.name} dropped: its position lies (\d+) mm from the other", run.stderr)
    assert far is not None and 24000 < int(far.group(1)) < 25000, run.stderr
    assert "1 slice(s) missing" in run.stderr  # its own place is shown blank, and said so
    volume = read_image(out)
    assert volume.geometry.shape == full.geometry.shape  # not a 5,000-slice volume
    assert (volume.array[20] == volume.array.min()).all()
    np.testing.assert_array_equal(volume.array[21:], full.array[21:])
    np.testing.assert_array_equal(volume.array[:20], full.array[:20])
