"""A bad-input corpus made from the shared real data, run through the real ``medseg`` commands.

Every case must end in exit code 2 and exactly one stderr line ``medseg: error: PATH: problem``
naming the file, with no traceback and no output written; or, where the input is usable, in a
correct output and a warning. The readers are also called in-process for what the GUI opens
(``load_mask`` is the GUI's ``--labels`` path).
"""

from __future__ import annotations

import gzip
import os
import re
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from medseg_gui.core.volume import Volume
from medseg_gui.io.errors import LoadError
from medseg_gui.io.imagefile import read_image, write_image
from medseg_gui.io.loader import load_volume
from medseg_gui.io.masks import load_mask

ROOT = Path(__file__).resolve().parent.parent
STS = ("ibsi_sts", "nifti", "STS_001")
STS_DICOM = ("ibsi_sts", "dicom", "STS_001", "CT")


def medseg(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MEDSEG_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "medseg_gui.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120)


def assert_one_error(run: subprocess.CompletedProcess[str], names: Path, *words: str) -> str:
    """Exit 2, one stderr line naming ``names``, no traceback; returns the line."""
    assert "Traceback" not in run.stderr + run.stdout, run.stderr
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2, run.stderr
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"medseg: error: {names}"), lines[0]
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


# --- the corpus: each maker writes one damaged file from real data into a folder -------------

def truncated_mask(data: Path, tmp: Path) -> Path:
    raw = data.joinpath(*STS, "CT_mask.nii.gz").read_bytes()
    out = tmp / "mask_truncated.nii.gz"
    out.write_bytes(raw[: len(raw) * 3 // 4])
    return out


def truncated_rtstruct(data: Path, tmp: Path) -> Path:
    raw = data.joinpath(*STS_DICOM, "mask", "RS.dcm").read_bytes()
    out = tmp / "RS_truncated.dcm"
    out.write_bytes(raw[: len(raw) // 2])
    return out


def _rewrite_nifti(data: Path, tmp: Path, name: str, edit: Callable[[bytearray], None]) -> Path:
    raw = bytearray(gzip.decompress(data.joinpath(*STS, "CT_image.nii.gz").read_bytes()))
    edit(raw)
    out = tmp / name
    out.write_bytes(gzip.compress(bytes(raw), compresslevel=1))
    return out


def zero_spacing(data: Path, tmp: Path) -> Path:
    return _rewrite_nifti(data, tmp, "zero_spacing.nii.gz",
                          lambda h: struct.pack_into("<f", h, 88, 0.0))  # pixdim[3]


def nan_spacing(data: Path, tmp: Path) -> Path:
    return _rewrite_nifti(data, tmp, "nan_spacing.nii.gz",
                          lambda h: struct.pack_into("<f", h, 84, float("nan")))  # pixdim[2]


def huge_nifti(data: Path, tmp: Path) -> Path:
    # dim[1..3] = 30000 x 30000 x 1: 1.8 GB of int16 claimed by a 3 MB file.
    return _rewrite_nifti(data, tmp, "huge.nii.gz",
                          lambda h: struct.pack_into("<4h", h, 40, 3, 30000, 30000, 1))


def _itk_copy(data: Path, tmp: Path, name: str, compress: bool) -> Path:
    out = tmp / name
    sitk.WriteImage(sitk.ReadImage(str(data.joinpath(*STS, "CT_image.nii.gz"))), str(out),
                    useCompression=compress)
    return out


def _truncated_copy(data: Path, tmp: Path, suffix: str, compress: bool) -> Path:
    """The sarcoma CT written by ITK, cut to three quarters of its bytes."""
    full = _itk_copy(data, tmp, f"full{suffix}", compress=compress)
    out = tmp / f"truncated{suffix}"
    out.write_bytes(full.read_bytes()[: full.stat().st_size * 3 // 4])
    full.unlink()
    return out


def truncated_nrrd(data: Path, tmp: Path) -> Path:
    return _truncated_copy(data, tmp, ".nrrd", compress=True)


def truncated_mha(data: Path, tmp: Path) -> Path:
    return _truncated_copy(data, tmp, ".mha", compress=False)


def huge_mha(data: Path, tmp: Path) -> Path:
    full = _itk_copy(data, tmp, "full.mha", compress=True)
    raw = full.read_bytes()
    full.unlink()
    start = raw.index(b"DimSize = ")
    end = raw.index(b"\n", start)
    out = tmp / "huge.mha"
    out.write_bytes(raw[:start] + b"DimSize = 40000 40000 2" + raw[end:])
    return out


def empty_folder(data: Path, tmp: Path) -> Path:
    out = tmp / "empty"
    out.mkdir()
    (out / "notes.txt").write_text("not DICOM")
    return out


STUDY_CASES = {
    "truncated NRRD": (truncated_nrrd, "truncated"),
    "truncated MHA": (truncated_mha, "truncated"),
    "zero spacing": (zero_spacing, "voxel size"),
    "NaN spacing": (nan_spacing, "voxel size"),
    # Streamed to its end in bounded memory: the 3 MB of data cannot fill 1.8 GB.
    "huge NIfTI header": (huge_nifti, "truncated"),
    # 12.8 GB claimed from 3.6 MB: refused before reading, past deflate's 1032:1.
    "huge MHA header": (huge_mha, "cannot expand"),
    "non-DICOM folder": (empty_folder, "no DICOM image series"),
}


# Both commands read through load_volume: convert is run on the cases it could write from.
@pytest.mark.parametrize(("case", "command"), [
    *((case, "info") for case in sorted(STUDY_CASES)),
    *((case, "convert") for case in ("truncated NRRD", "zero spacing", "non-DICOM folder")),
])
def test_bad_study(case: str, command: str, shared_data: Path, tmp_path: Path) -> None:
    make, word = STUDY_CASES[case]
    bad = make(shared_data, tmp_path)
    out = tmp_path / "out" / "converted.nii.gz"
    run = medseg("info", bad) if command == "info" else medseg("convert", bad, out)
    assert_one_error(run, bad, word)
    assert run.stdout == ""
    assert not out.parent.exists()


def _seg_nrrd(data: Path, tmp: Path, name: str, edit: Callable[[bytes], bytes]) -> Path:
    """The sarcoma mask written as a Slicer .seg.nrrd, then ``edit``-ed."""
    from medseg_gui.io.label_nifti import read_label_nifti
    from medseg_gui.io.seg_nrrd import write_seg_nrrd

    full = write_seg_nrrd(read_label_nifti(data.joinpath(*STS, "CT_mask.nii.gz")),
                          tmp / "full.seg.nrrd")
    out = tmp / name
    out.write_bytes(edit(full.read_bytes()))
    full.unlink()
    return out


def _sizes(raw: bytes, sizes: str) -> bytes:
    return re.sub(rb"\nsizes: [^\n]*", f"\nsizes: {sizes}".encode(), raw, count=1)


def truncated_seg_nrrd(data: Path, tmp: Path) -> Path:
    return _seg_nrrd(data, tmp, "truncated.seg.nrrd", lambda raw: raw[: len(raw) * 3 // 4])


def huge_seg_nrrd(data: Path, tmp: Path) -> Path:
    # 2.5 GB of uint8 claimed by a file of a few kB: more than its data can inflate to.
    return _seg_nrrd(data, tmp, "huge.seg.nrrd", lambda raw: _sizes(raw, "5000 5000 100"))


def beyond_memory_seg_nrrd(data: Path, tmp: Path) -> Path:
    # 10^12 voxels: refused before anything is inflated or allocated.
    return _seg_nrrd(data, tmp, "beyond.seg.nrrd", lambda raw: _sizes(raw, "100000 100000 100"))


MASK_CASES = {
    "truncated mask": (truncated_mask, "truncated"),
    "truncated RTSTRUCT": (truncated_rtstruct, "unreadable DICOM"),
    "truncated seg.nrrd": (truncated_seg_nrrd, "truncated"),
    "huge seg.nrrd header": (huge_seg_nrrd, "cannot expand"),
    "seg.nrrd beyond memory": (beyond_memory_seg_nrrd, "machine's"),
}


@pytest.mark.parametrize("case", sorted(MASK_CASES))
def test_bad_mask_is_refused_by_export_and_the_gui(case: str, shared_data: Path,
                                                   tmp_path: Path) -> None:
    make, word = MASK_CASES[case]
    bad = make(shared_data, tmp_path)
    dicom = case == "truncated RTSTRUCT"
    study = (shared_data.joinpath(*STS_DICOM, "image") if dicom
             else shared_data.joinpath(*STS, "CT_image.nii.gz"))
    out = tmp_path / "out.nii.gz"
    assert_one_error(medseg("export", study, "--mask", bad, "--format", "nifti", "-o", out),
                     bad, word)
    assert list(tmp_path.glob("out*")) == []
    # The GUI's --labels and Open labels call load_mask on the loaded study.
    with pytest.raises(LoadError, match=word):
        load_mask(bad, _dicom_study(shared_data) if dicom
                  else read_image(shared_data.joinpath(*STS, "CT_image.nii.gz")))


def _dicom_study(shared_data: Path) -> Volume:
    return load_volume(shared_data.joinpath(*STS_DICOM, "image"))


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


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root may write in any folder, so there is no refusal to test")
def test_output_in_a_read_only_folder(shared_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o500)
    out = folder / "ct.nii.gz"
    run = medseg("convert", shared_data.joinpath(*STS, "CT_image.nii.gz"), out)
    assert_one_error(run, out, "no permission")
    assert list(folder.iterdir()) == []


def test_symlink_loop_in_a_dicom_folder(shared_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "series"
    folder.mkdir()
    for src in sorted(shared_data.joinpath(*STS_DICOM, "image").glob("*.dcm"))[:3]:
        (folder / src.name).write_bytes(src.read_bytes())
    (folder / "a").symlink_to("b")
    (folder / "b").symlink_to("a")
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
    image = sitk.ReadImage(str(shared_data.joinpath(*STS, "CT_image.nii.gz")), sitk.sitkFloat32)
    array = sitk.GetArrayFromImage(image).copy()
    array[0, :10, :10] = np.nan
    array[1, 0, 0] = np.inf
    bad = sitk.GetImageFromArray(array)
    bad.CopyInformation(image)
    path = tmp_path / "nan.nii.gz"
    sitk.WriteImage(bad, str(path))
    volume = read_image(path)
    assert volume.warnings == ("101 voxel(s) are NaN or infinite (not a number); they are shown "
                               "as the lowest value, -1000",)
    low = float(np.nanmin(array[np.isfinite(array)]))
    assert np.all(volume.array[0, :10, :10] == low) and volume.array[1, 0, 0] == low
    np.testing.assert_array_equal(volume.array[2:], array[2:])
    # A label map with NaN is refused: there is no safe label to put there.
    assert_one_error(medseg("export", shared_data.joinpath(*STS, "CT_image.nii.gz"), "--mask",
                            path, "--format", "nifti", "-o", tmp_path / "m.nii.gz"),
                     path, "101 NaN")


def test_2d_image_loads_with_a_warning(shared_data: Path, tmp_path: Path) -> None:
    image = sitk.ReadImage(str(shared_data.joinpath(*STS, "CT_image.nii.gz")))
    path = tmp_path / "slice.nii.gz"
    sitk.WriteImage(image[:, :, 5], str(path))
    volume = read_image(path)
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

def _copied(data: Path, tmp: Path, *parts: str) -> Path:
    out = tmp / "masks" / parts[-1]
    out.parent.mkdir()
    out.write_bytes(data.joinpath(*parts).read_bytes())
    return out


MASK_AS_STUDY = {
    "dcmqi SEG": lambda d, t: _copied(d, t, "dcmqi_seg", "segmentations", "liver.dcm"),
    "highdicom SEG": lambda d, t: _copied(d, t, "highdicom_seg", "seg_image_ct_binary.dcm"),
    "RTSTRUCT": lambda d, t: _copied(d, t, *STS_DICOM, "mask", "RS.dcm"),
    "folder of a SEG": lambda d, t: _copied(d, t, "dcmqi_seg", "segmentations",
                                            "liver.dcm").parent,
}
MASK_KIND = {"dcmqi SEG": "a DICOM SEG (segmentation)", "RTSTRUCT": "a DICOM RTSTRUCT (contours)",
             "highdicom SEG": "a DICOM SEG (segmentation)"}


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


# --- damaged slice positions -------------------------------------------------------------------

def _series_with_moved_slice(data: Path, tmp: Path, n: int, shift_mm: float | None) -> Path:
    """The real STS_001 CT series with slice ``n`` (by position) moved: by ``shift_mm`` along
    z, or (``None``) to 0.002 mm from slice ``n - 1``. Returns the moved file."""
    import pydicom

    folder = tmp / "series"
    folder.mkdir()
    for src in data.joinpath(*STS_DICOM, "image").glob("*.dcm"):
        (folder / src.name).write_bytes(src.read_bytes())
    files = sorted(folder.glob("*.dcm"),
                   key=lambda f: float(pydicom.dcmread(f, stop_before_pixels=True)
                                       .ImagePositionPatient[2]))
    victim = pydicom.dcmread(files[n])
    z = float(victim.ImagePositionPatient[2])
    if shift_mm is None:
        below = float(pydicom.dcmread(files[n - 1]).ImagePositionPatient[2])
        z = below + 0.002 * np.sign(z - below)
    else:
        z += shift_mm
    victim.ImagePositionPatient[2] = z
    victim.save_as(files[n])
    return files[n]


def test_two_slices_at_one_position_are_refused_naming_the_file(shared_data: Path,
                                                                tmp_path: Path) -> None:
    moved = _series_with_moved_slice(shared_data, tmp_path, 20, None)
    for args in (("info", moved.parent), ("convert", moved.parent, tmp_path / "o" / "ct.nii")):
        line = assert_one_error(medseg(*args), moved, "0.002 mm from", "at one position")
        assert "mm spacing" in line
    assert not (tmp_path / "o").exists()


def test_a_slice_displaced_by_25_m_is_dropped_with_a_warning(shared_data: Path,
                                                             tmp_path: Path) -> None:
    moved = _series_with_moved_slice(shared_data, tmp_path, 20, 25000.0)
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
