"""Load one DICOM image series into a :class:`~medseg_gui.core.volume.Volume`.

Single-frame series are sorted along the slice normal (the cross product of the row and column
direction cosines), never by file name or InstanceNumber. Positions are then checked against the
slice spacing: two slices closer than a tenth of it (or of the slice thickness, when thinner) are
one position held twice, refused naming the file; a lone slice more than
:data:`_MAX_GAP_SLICES` spacings from the rest (a damaged ImagePositionPatient) is dropped with
a warning naming it, and several such stacks are refused, so neither becomes a wrong slice or a
volume of thousands of blank ones. Missing slices (gaps that are whole
multiples of the usual spacing) are filled with blank slices at their true positions so that
geometry stays exact, with a warning naming the positions; irregular spacing is resampled onto a
regular grid with a warning; gantry tilt is reported. Enhanced (multi-frame) images go through
highdicom, which reads their per-frame functional groups.

Pixel values are converted to modality units (HU for CT) with each slice's own rescale slope and
intercept. Compressed transfer syntaxes are decoded by pydicom's plugins (pylibjpeg-openjpeg for
JPEG 2000, pylibjpeg-libjpeg for JPEG lossless/JPEG-LS, numpy for RLE, GDCM as a fallback).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.progress import Progress, check, no_progress
from medseg_gui.core.volume import StudyInfo, Volume
from medseg_gui.io.errors import LoadError

GapPolicy = Literal["warn", "error"]

# The tags a slice is loaded with: skipping the rest (sequences, private tags) halves read time.
_SLICE_TAGS = [
    "ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing", "RescaleSlope",
    "RescaleIntercept", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
    "PixelRepresentation", "SamplesPerPixel", "PhotometricInterpretation", "NumberOfFrames",
    "PlanarConfiguration", "PixelData", "FloatPixelData", "DoubleFloatPixelData",
    "SpacingBetweenSlices", "SliceThickness", "SOPInstanceUID", "BodyPartExamined",
]
_NATIVE_LE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}

# Slice positions are compared with this relative tolerance on the spacing.
_SPACING_RTOL = 0.02
# Slices closer than this fraction of the spacing (or thickness) share one position.
_SAME_POSITION = 0.1
_SAME_POSITION_MM = 1e-3  # the floor when the median spacing itself is zero (all duplicated)
# A gap of more spacings than this is no run of missing slices: the slices beyond it are another
# stack or a damaged position (filling it would build thousands of blank slices).
_MAX_GAP_SLICES = 20
_TILT_TOL_DEG = 0.5


def study_info(ds: Dataset) -> StudyInfo:
    """Identifiers of the series a dataset belongs to."""
    return StudyInfo(
        patient_id=str(ds.get("PatientID", "")),
        patient_name=str(ds.get("PatientName", "")),
        study_uid=str(ds.get("StudyInstanceUID", "")),
        series_uid=str(ds.get("SeriesInstanceUID", "")),
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "")),
        study_description=str(ds.get("StudyDescription", "")),
        series_description=str(ds.get("SeriesDescription", "")),
        study_date=str(ds.get("StudyDate", "")),
        modality=str(ds.get("Modality", "")),
        body_part=str(ds.get("BodyPartExamined", "") or "").strip().upper(),
    )


def _read(path: Path, tags: list[str] | None = None) -> Dataset:
    try:
        return pydicom.dcmread(path, specific_tags=tags)
    except Exception as exc:
        raise LoadError(path, f"not a readable DICOM file ({type(exc).__name__}: {exc})") from exc


def _native_dtype(ds: Dataset) -> np.dtype[Any] | None:
    """The array dtype of uncompressed little-endian greyscale pixels, else ``None``."""
    bits = int(ds.get("BitsAllocated", 0) or 0)
    if (
        str(ds.file_meta.get("TransferSyntaxUID", "")) in _NATIVE_LE
        and int(ds.get("SamplesPerPixel", 1) or 1) == 1
        and bits in (8, 16, 32)
        and (int(ds.get("BitsStored", bits) or bits) == bits
             or int(ds.get("PixelRepresentation", 0) or 0) == 0)
    ):
        signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
        return np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
    return None


def _tail_pixels(path: Path, ds: Dataset) -> npt.NDArray[Any] | None:
    """Uncompressed pixels read straight from the end of the file, when they are there.

    Parsing a header costs pydicom about 0.4 ms a file; the index has parsed it already, so for
    uncompressed data only the pixel bytes are read. They are taken only after checking that the
    PixelData element's tag and length stand right before them (explicit or implicit VR);
    anything else (trailing padding, other layouts) returns ``None`` and pydicom reads the file.
    """
    dtype = _native_dtype(ds)
    if dtype is None or "Rows" not in ds or "Columns" not in ds:
        return None
    n = int(ds.Rows) * int(ds.Columns) * dtype.itemsize
    length = n + (n % 2)
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if size < length + 12:
            return None
        f.seek(size - length - 12)
        head = f.read(12)
        data = f.read(length)
    tag = b"\xe0\x7f\x10\x00"
    explicit = head[:4] == tag and head[4:6] in (b"OW", b"OB") and head[6:8] == b"\0\0"
    implicit = head[4:8] == tag
    if not (explicit or implicit) or int.from_bytes(head[8:12], "little") != length:
        return None
    return np.frombuffer(data, dtype=dtype, count=n // dtype.itemsize).reshape(
        int(ds.Rows), int(ds.Columns)
    )


def _pixels(ds: Dataset, path: Path) -> npt.NDArray[Any]:
    try:
        return np.asarray(ds.pixel_array)
    except Exception as exc:
        ts = ds.file_meta.get("TransferSyntaxUID", "unknown")
        name = getattr(ts, "name", str(ts))
        raise LoadError(
            path, f"cannot decode pixel data (transfer syntax {name}): {exc}"
        ) from exc


def _to_modality_units(slices: list[npt.NDArray[Any]], datasets: list[Dataset]) -> npt.NDArray[Any]:
    slopes = [float(ds.get("RescaleSlope", 1) or 1) for ds in datasets]
    inters = [float(ds.get("RescaleIntercept", 0) or 0) for ds in datasets]
    stack = np.stack(slices)
    integral = all(s == 1.0 for s in slopes) and all(float(i).is_integer() for i in inters)
    if integral:
        lo = int(stack.min()) + int(min(inters))
        hi = int(stack.max()) + int(max(inters))
        dtype: type = np.int16 if lo >= -32768 and hi <= 32767 else np.int32
        out: npt.NDArray[Any] = stack.astype(dtype)
        for n, i in enumerate(inters):
            if i:
                out[n] += dtype(i)
        return out
    out32 = stack.astype(np.float32)
    for n, (s, i) in enumerate(zip(slopes, inters, strict=True)):
        out32[n] = out32[n] * s + i
    return out32


def load_series(
    files: Sequence[str | Path],
    *,
    headers: Sequence[Dataset] | None = None,
    progress: Progress = no_progress,
    gaps: GapPolicy = "warn",
    source: str | Path | None = None,
) -> Volume:
    """Read the files of one series into a Volume.

    Parameters
    ----------
    files
        The series' files (any order). One multi-frame file is read as an enhanced image.
    headers
        The files' headers as the index read them (``SeriesEntry.headers``), to avoid parsing
        every file twice; the files are read in full when omitted.
    progress
        Progress/cancel callback.
    gaps
        ``"warn"``: load with blank slices in gaps and a warning; ``"error"``: refuse.
    source
        What to name in messages and ``Volume.source`` (the folder, by default the first file's).

    Raises
    ------
    LoadError
        Unreadable or undecodable files, inconsistent slices, or gaps when ``gaps="error"``.
    """
    paths = [Path(f) for f in files]
    if not paths:
        raise LoadError(source or ".", "no DICOM files in the series")
    src = str(source) if source is not None else str(paths[0].parent)
    if headers is not None and len(headers) != len(paths):
        raise ValueError("headers must match files one to one")
    first = headers[0] if headers else _read(paths[0])
    if int(first.get("NumberOfFrames", 1) or 1) > 1:
        if len(paths) > 1:
            raise LoadError(src, "a series of several multi-frame files: load one file at a time")
        return _load_multiframe(paths[0], _read(paths[0]), progress)
    datasets: list[Dataset] = []
    arrays: list[npt.NDArray[Any]] = []
    for n, path in enumerate(paths):
        if n % 8 == 0:
            check(progress, n / len(paths), f"Reading slice {n + 1}/{len(paths)}")
        ds = headers[n] if headers else (first if n == 0 else _read(path, _SLICE_TAGS))
        arr = _tail_pixels(path, ds) if headers else None
        if arr is None:
            if headers:
                ds = _read(path, _SLICE_TAGS)
            if "PixelData" not in ds:
                raise LoadError(path, "DICOM file has no pixel data (not an image)")
            arr = _pixels(ds, path)
        if arr.ndim != 2:
            raise LoadError(path, f"expected a greyscale 2D slice, pixel array is {arr.shape}")
        datasets.append(ds)
        arrays.append(arr)
    check(progress, 1.0, "Assembling volume")
    return _assemble(paths, datasets, arrays, src, gaps)


def _slice_geometry(ds: Dataset, path: Path) -> tuple[npt.NDArray[np.float64], ...]:
    try:
        iop = np.asarray(ds.ImageOrientationPatient, dtype=np.float64)
        ipp = np.asarray(ds.ImagePositionPatient, dtype=np.float64)
        ps = np.asarray(ds.PixelSpacing, dtype=np.float64)
    except AttributeError as exc:
        raise LoadError(path, f"slice has no patient geometry ({exc})") from exc
    return iop, ipp, ps


def _assemble(
    paths: list[Path],
    datasets: list[Dataset],
    arrays: list[npt.NDArray[Any]],
    src: str,
    gaps: GapPolicy,
) -> Volume:
    geoms = [_slice_geometry(ds, p) for ds, p in zip(datasets, paths, strict=True)]
    iop0, _, ps0 = geoms[0]
    shape0 = arrays[0].shape
    for path, (iop, _, ps), arr in zip(paths, geoms, arrays, strict=True):
        if arr.shape != shape0 or not np.allclose(iop, iop0, atol=1e-4):
            raise LoadError(path, "slice differs in size or orientation from the rest of the "
                            "series")
        if not np.allclose(ps, ps0, rtol=1e-4):
            raise LoadError(path, f"pixel spacing {list(ps)} differs from {list(ps0)}")
    row_dir, col_dir = iop0[:3], iop0[3:]
    normal = np.cross(row_dir, col_dir)
    positions = np.asarray([g[1] for g in geoms])
    dist = positions @ normal
    order = np.argsort(dist, kind="stable")
    dist, positions = dist[order], positions[order]
    datasets = [datasets[i] for i in order]
    arrays = [arrays[i] for i in order]
    paths = [paths[i] for i in order]
    keep, warnings = _cluster(dist, paths, datasets[0])
    if len(keep) < len(dist):
        dist, positions = dist[keep], positions[keep]
        datasets = [datasets[i] for i in keep]
        arrays = [arrays[i] for i in keep]
        paths = [paths[i] for i in keep]
    volume = _to_modality_units(arrays, datasets)
    if len(dist) > 1:
        step = positions[-1] - positions[0]
        tilt = np.degrees(np.arccos(min(1.0, abs(step @ normal) / np.linalg.norm(step))))
        if tilt > _TILT_TOL_DEG:
            warnings.append(
                f"gantry/detector tilt of {tilt:.1f} degrees: slices are sheared; positions "
                "along the slice axis are exact, in-plane positions away from the centre are not"
            )
        volume, dist, gap_warning = _regularise(volume, dist, src, gaps)
        warnings += gap_warning
        spacing_k = float(dist[-1] - dist[0]) / (len(dist) - 1) if len(dist) > 1 else 1.0
    else:
        spacing_k = float(
            datasets[0].get("SpacingBetweenSlices") or datasets[0].get("SliceThickness") or 1.0
        )
    geometry = Geometry(
        shape=(volume.shape[0], volume.shape[1], volume.shape[2]),
        # PixelSpacing is (between rows, between columns) = (along j, along i).
        spacing=(float(ps0[1]), float(ps0[0]), abs(spacing_k)),
        origin=tuple(positions[0]),
        direction=tuple(np.column_stack([row_dir, col_dir, normal]).ravel()),
    )
    return Volume(volume, geometry, study_info(datasets[0]), src, tuple(warnings))


def _cluster(dist: npt.NDArray[np.float64], paths: list[Path], first: Dataset
             ) -> tuple[npt.NDArray[np.intp], list[str]]:
    """The slices to keep (indices into the sorted ``dist``) and warnings for those dropped.

    Raises
    ------
    LoadError
        Two slices at one position (within the tolerance), naming the second file, or slices
        in several stacks more than :data:`_MAX_GAP_SLICES` spacings apart.
    """
    everything = np.arange(len(dist))
    if len(dist) < 2:
        return everything, []
    diffs = np.diff(dist)
    spacing = float(np.median(diffs))  # robust to the one bad slice being looked for
    thickness = float(first.get("SliceThickness") or 0.0)
    scale = min(spacing, thickness) if thickness > 0 else spacing
    tol = max(_SAME_POSITION * scale, _SAME_POSITION_MM)
    close = np.flatnonzero(diffs < tol)
    if close.size:
        n = int(close[0])
        raise LoadError(
            paths[n + 1],
            f"{float(diffs[n]):.3f} mm from {paths[n].name}, so both are at one position "
            f"(slices closer than {tol:.2f} mm, a tenth of the {scale:.2f} mm spacing): a "
            "duplicated or damaged slice, or two acquisitions in one series",
        )
    breaks = np.flatnonzero(diffs > _MAX_GAP_SLICES * spacing)
    if not breaks.size:
        return everything, []
    stacks = np.split(everything, breaks + 1)
    main = max(stacks, key=len)
    strays = [st for st in stacks if st is not main]
    if any(len(st) > 1 for st in strays):
        raise LoadError(
            paths[int(strays[0][0])],
            f"the series holds {len(stacks)} stacks of slices up to "
            f"{float(diffs[breaks].max()):.0f} mm apart; load them separately",
        )
    lo, hi = float(dist[main[0]]), float(dist[main[-1]])
    warnings = [f"{paths[int(i)].name} dropped: its position lies "
                f"{float(min(abs(dist[i] - lo), abs(dist[i] - hi))):.0f} mm from the other "
                f"slices (more than {_MAX_GAP_SLICES} x {spacing:.2f} mm; a damaged "
                "ImagePositionPatient?)" for st in strays for i in st]
    return main, warnings


def _regularise(
    volume: npt.NDArray[Any], dist: npt.NDArray[np.float64], src: str, gaps: GapPolicy
) -> tuple[npt.NDArray[Any], npt.NDArray[np.float64], list[str]]:
    """Put slices on a regular grid: blank slices in gaps, resampling for irregular spacing."""
    diffs = np.diff(dist)
    step = float(np.median(diffs))
    if np.allclose(diffs, step, rtol=_SPACING_RTOL):
        return volume, dist, []
    ratios = diffs / step
    whole = np.allclose(ratios, np.rint(ratios), atol=_SPACING_RTOL * 2)
    if whole:
        missing = int(np.rint(ratios).sum() - len(diffs))
        where = [f"{dist[n] + step:.1f}" for n in np.nonzero(np.rint(ratios) > 1)[0]]
        message = (f"{missing} slice(s) missing after positions {', '.join(where)} mm "
                   f"(spacing {step:.2f} mm)")
        if gaps == "error":
            raise LoadError(src, message)
        idx = np.rint((dist - dist[0]) / step).astype(int)
        out = np.full((idx[-1] + 1, *volume.shape[1:]), volume.min(), dtype=volume.dtype)
        out[idx] = volume
        grid = dist[0] + step * np.arange(idx[-1] + 1)
        return out, grid, [message + ": shown as blank slices"]
    message = (f"unevenly spaced slices ({diffs.min():.2f} to {diffs.max():.2f} mm apart)")
    if gaps == "error":
        raise LoadError(src, message)
    step = float(diffs.min())
    n = int(np.floor((dist[-1] - dist[0]) / step + 1e-6)) + 1
    grid = dist[0] + step * np.arange(n)
    upper = np.clip(np.searchsorted(dist, grid, side="right"), 1, len(dist) - 1)
    w = ((grid - dist[upper - 1]) / (dist[upper] - dist[upper - 1]))[:, None, None]
    out32 = volume[upper - 1] * (1 - w) + volume[upper] * w
    out = np.rint(out32).astype(volume.dtype) if volume.dtype.kind == "i" else out32.astype(
        volume.dtype)
    return out, grid, [message + f": resampled to a regular {step:.2f} mm grid"]


def _load_multiframe(path: Path, ds: Dataset, progress: Progress) -> Volume:
    import highdicom as hd  # imported here: only enhanced images need it

    check(progress, 0.1, "Reading enhanced multi-frame image")
    try:
        image = hd.Image.from_dataset(ds, copy=False)
        hvol = image.get_volume(dtype=np.float32)
    except Exception as exc:
        raise LoadError(path, f"cannot build a volume from this multi-frame image: {exc}") from exc
    # highdicom's affine maps (slice, row, column) indices to LPS; ours orders columns i, j, k.
    array = np.asarray(hvol.array)
    if array.ndim != 3:
        raise LoadError(path, f"multi-frame image is not a single 3D volume (shape {array.shape})")
    axes = np.asarray(hvol.affine, dtype=np.float64)[:3, [2, 1, 0]]
    origin = np.asarray(hvol.affine, dtype=np.float64)[:3, 3]
    # Frames may be stored feet-to-head or head-to-feet; order them along the slice normal, as
    # single-frame series are, so both kinds of the same study give the same array.
    if axes[:, 2] @ np.cross(axes[:, 0], axes[:, 1]) < 0:
        origin = origin + axes[:, 2] * (array.shape[0] - 1)
        axes[:, 2] = -axes[:, 2]
        array = array[::-1].copy()
    spacing = np.linalg.norm(axes, axis=0)
    geometry = Geometry(
        shape=(array.shape[0], array.shape[1], array.shape[2]),
        spacing=tuple(spacing),
        origin=tuple(origin),
        direction=tuple((axes / spacing).ravel()),
    )
    if np.all(np.isclose(array, np.rint(array))) and array.min() >= -32768 and array.max() <= 32767:
        array = array.astype(np.int16)
    check(progress, 1.0, "Done")
    return Volume(array, geometry, study_info(ds), str(path), ())
