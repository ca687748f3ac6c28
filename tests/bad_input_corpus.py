"""The bad-input corpus: damaged or misplaced files made from the shared real data.

Shared by ``tests/test_bad_input.py`` (every case through the real commands) and
``benchmarks/bad_input_table.py`` (the table of case, command, exit code, message and peak memory).
Each maker writes one file (or folder) into ``tmp`` from the real data in ``data`` and returns it.
"""

from __future__ import annotations

import gzip
import os
import re
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parent.parent
Maker = Callable[[Path, Path], Path]
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


def nan_mask(data: Path, tmp: Path) -> Path:
    """The sarcoma's mask as float with 101 NaN/infinite voxels: no safe label exists there."""
    image = sitk.ReadImage(str(data.joinpath(*STS, "CT_mask.nii.gz")), sitk.sitkFloat32)
    array = sitk.GetArrayFromImage(image).copy()
    array[0, :10, :10] = np.nan
    array[1, 0, 0] = np.inf
    bad = sitk.GetImageFromArray(array)
    bad.CopyInformation(image)
    out = tmp / "mask_nan.nii.gz"
    sitk.WriteImage(bad, str(out))
    return out


def symlink_loop(data: Path, tmp: Path) -> Path:
    """Three real CT slices in a folder that also holds a loop of symbolic links."""
    folder = tmp / "series"
    folder.mkdir()
    for src in sorted(data.joinpath(*STS_DICOM, "image").glob("*.dcm"))[:3]:
        (folder / src.name).write_bytes(src.read_bytes())
    (folder / "a").symlink_to("b")
    (folder / "b").symlink_to("a")
    return folder


def image_2d(data: Path, tmp: Path) -> Path:
    """One slice of the sarcoma CT as a 2D NIfTI: it has no slice thickness."""
    out = tmp / "slice.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(data.joinpath(*STS, "CT_image.nii.gz")))[:, :, 5], str(out))
    return out


def series_with_moved_slice(data: Path, tmp: Path, n: int, shift_mm: float | None) -> Path:
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


def two_slices_at_one_position(data: Path, tmp: Path) -> Path:
    return series_with_moved_slice(data, tmp, 20, None).parent


def slice_displaced_25_m(data: Path, tmp: Path) -> Path:
    return series_with_moved_slice(data, tmp, 20, 25000.0).parent


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


# case -> (maker, a word the one-line error must hold)
STUDY_CASES: dict[str, tuple[Maker, str]] = {
    "truncated NRRD": (truncated_nrrd, "truncated"),
    "truncated MHA": (truncated_mha, "truncated"),
    "zero spacing": (zero_spacing, "voxel size"),
    "NaN spacing": (nan_spacing, "voxel size"),
    # Streamed to its end in bounded memory: the 3 MB of data cannot fill 1.8 GB.
    "huge NIfTI header": (huge_nifti, "truncated"),
    # 12.8 GB claimed from 3.6 MB: refused before reading, past deflate's 1032:1.
    "huge MHA header": (huge_mha, "cannot expand"),
    "non-DICOM folder": (empty_folder, "no DICOM image series"),
    "two slices at one position": (two_slices_at_one_position, "at one position"),
}

# Usable inputs: they load, with a warning holding the word.
WARNED_STUDIES: dict[str, tuple[Maker, str]] = {
    "slice displaced by 25 m": (slice_displaced_25_m, "dropped"),
    "symlink loop in the folder": (symlink_loop, "Too many levels of symbolic links"),
    "NaN voxels": (nan_mask, "NaN or infinite"),
    "2D NIfTI": (image_2d, "slice thickness is unknown"),
}

MASK_CASES: dict[str, tuple[Maker, str]] = {
    "truncated mask": (truncated_mask, "truncated"),
    "truncated RTSTRUCT": (truncated_rtstruct, "unreadable DICOM"),
    "NaN mask": (nan_mask, "101 NaN"),
    "truncated seg.nrrd": (truncated_seg_nrrd, "truncated"),
    "huge seg.nrrd header": (huge_seg_nrrd, "cannot expand"),
    "seg.nrrd beyond memory": (beyond_memory_seg_nrrd, "machine's"),
}


def study_for_mask(data: Path, case: str) -> Path:
    """The study a mask case belongs to: an RTSTRUCT needs its DICOM series."""
    return (data.joinpath(*STS_DICOM, "image") if "RTSTRUCT" in case
            else data.joinpath(*STS, "CT_image.nii.gz"))


def _copied(data: Path, tmp: Path, *parts: str) -> Path:
    out = tmp / "masks" / parts[-1]
    out.parent.mkdir()
    out.write_bytes(data.joinpath(*parts).read_bytes())
    return out


MASK_AS_STUDY: dict[str, Maker] = {
    "dcmqi SEG": lambda d, t: _copied(d, t, "dcmqi_seg", "segmentations", "liver.dcm"),
    "highdicom SEG": lambda d, t: _copied(d, t, "highdicom_seg", "seg_image_ct_binary.dcm"),
    "RTSTRUCT": lambda d, t: _copied(d, t, *STS_DICOM, "mask", "RS.dcm"),
    "folder of a SEG": lambda d, t: _copied(d, t, "dcmqi_seg", "segmentations",
                                            "liver.dcm").parent,
}
MASK_KIND = {"dcmqi SEG": "a DICOM SEG (segmentation)", "RTSTRUCT": "a DICOM RTSTRUCT (contours)",
             "highdicom SEG": "a DICOM SEG (segmentation)"}
