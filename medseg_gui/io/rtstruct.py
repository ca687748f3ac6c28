"""DICOM RTSTRUCT import: closed planar contours rasterised onto a CT grid.

Contour points (LPS mm) are mapped to continuous ``(i, j, k)`` indices of the target grid and
grouped by the nearest slice. A voxel belongs to a contour when its *centre* lies inside the
polygon (``skimage.draw.polygon``); this reproduces the IBSI reference masks voxel for voxel.
Several contours of one ROI on one slice are combined with even-odd (XOR), so an
inner contour cuts a hole; this is what ``CLOSED_PLANAR`` means in practice and what
``CLOSED_PLANAR_XOR`` states explicitly.

A label map holds one label per voxel: where ROIs overlap, the later ROI (in file order) wins and
the import result says so in its ``warnings``. Point and open contours cannot be filled and are
skipped with a warning.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset
from skimage.draw import polygon

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.progress import Progress, check, no_progress
from medseg_gui.core.segmentation import Segment, Segmentation, SegmentSource
from medseg_gui.io.errors import LoadError

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
_CLOSED = {"CLOSED_PLANAR", "CLOSED_PLANAR_XOR"}
# A contour's points may spread this much along k (in slices) and still count as one slice.
_PLANE_TOL = 0.2
# A contour further than this (in slices) from the nearest slice centre is kept, with a warning.
_OFF_CENTRE_TOL = 0.25
_PALETTE = [
    (230, 80, 60), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
]


@dataclass(frozen=True)
class StructureInfo:
    """One ROI of a structure set, as listed before import."""

    number: int
    name: str
    frame_of_reference_uid: str
    contour_count: int
    color: tuple[int, int, int] | None


@dataclass
class RTStructImport:
    """What :func:`read_rtstruct` returns: the segmentation and the problems met on the way."""

    segmentation: Segmentation
    warnings: list[str] = field(default_factory=list)


def _read(path: Path) -> Dataset:
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:
        raise LoadError(path, f"not a readable DICOM file ({type(exc).__name__}: {exc})") from exc
    if str(ds.get("SOPClassUID", "")) != RTSTRUCT_SOP_CLASS and ds.get("Modality") != "RTSTRUCT":
        raise LoadError(path, f"not an RT Structure Set (modality {ds.get('Modality', '?')})")
    return ds


def _color(roi_contour: Dataset | None) -> tuple[int, int, int] | None:
    value = None if roi_contour is None else roi_contour.get("ROIDisplayColor")
    try:
        r, g, b = (int(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return (r, g, b) if all(0 <= c <= 255 for c in (r, g, b)) else None


def _rois(path: Path, ds: Dataset) -> list[tuple[StructureInfo, Dataset | None]]:
    """Every ROI with its ROI Contour item (``None`` when it has none), in file order."""
    try:
        default_for = [str(f.FrameOfReferenceUID)
                       for f in ds.get("ReferencedFrameOfReferenceSequence", [])]
        contours = {int(c.ReferencedROINumber): c for c in ds.get("ROIContourSequence", [])}
        out = []
        for roi in ds.StructureSetROISequence:
            number = int(roi.ROINumber)
            item = contours.get(number)
            for_uid = str(roi.get("ReferencedFrameOfReferenceUID", "") or "")
            name = str(roi.get("ROIName", "") or f"ROI {number}").strip()
            count = 0 if item is None else len(item.get("ContourSequence", []))
            for_uid = for_uid or (default_for[0] if default_for else "")
            out.append((StructureInfo(number, name, for_uid, count, _color(item)), item))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise LoadError(path, f"malformed structure set ({type(exc).__name__}: {exc})") from exc
    return out


def list_structures(path: str | Path) -> list[StructureInfo]:
    """The ROIs of an RTSTRUCT file, in file order.

    Parameters
    ----------
    path
        The RTSTRUCT file.

    Returns
    -------
    list of StructureInfo
        ROI number, name, referenced frame of reference UID, contour count and display colour.

    Raises
    ------
    LoadError
        The file is unreadable, not an RT Structure Set, or malformed.
    """
    path = Path(path)
    return [info for info, _ in _rois(path, _read(path))]


def _rasterise(path: Path, name: str, item: Dataset, geometry: Geometry, progress: Progress,
               step: tuple[float, float], warnings: list[str]) -> dict[int, npt.NDArray[np.bool_]]:
    """Slice index -> filled mask of one ROI (even-odd over its contours)."""
    nk, nj, ni = geometry.shape
    slices: dict[int, npt.NDArray[np.bool_]] = {}
    problems: Counter[str] = Counter()
    seq: Sequence[Dataset] = item.get("ContourSequence", [])
    for n, contour in enumerate(seq):
        if n % 16 == 0:
            check(progress, step[0] + step[1] * n / max(len(seq), 1), f"Rasterising {name}")
        kind = str(contour.get("ContourGeometricType", "")).upper()
        try:
            points = np.asarray(contour.ContourData, dtype=np.float64).reshape(-1, 3)
        except (AttributeError, TypeError, ValueError) as exc:
            raise LoadError(path, f"bad ContourData in ROI {name!r} ({exc})") from exc
        if kind not in _CLOSED:
            problems[f"skipped ({kind or 'no type'} cannot be filled)"] += 1
            continue
        if len(points) < 3:
            problems["skipped (fewer than 3 points)"] += 1
            continue
        ijk = geometry.world_to_index(points)
        spread = float(np.ptp(ijk[:, 2]))
        if spread > _PLANE_TOL:
            raise LoadError(path, f"a contour of ROI {name!r} spans {spread:.2f} slices of the "
                                  "image grid, so it is not on one slice (oblique or other grid?)")
        mean = float(ijk[:, 2].mean())
        k = round(mean)
        if not 0 <= k < nk:
            problems["skipped (outside the image slices)"] += 1
            continue
        if abs(mean - k) > _OFF_CENTRE_TOL:
            problems["drawn on the nearest slice (they lie between slice centres)"] += 1
        rr, cc = polygon(ijk[:, 1], ijk[:, 0], shape=(nj, ni))  # type: ignore[no-untyped-call]
        mask = slices.setdefault(k, np.zeros((nj, ni), dtype=bool))
        mask[rr, cc] ^= True
    warnings += [f"{name}: {count} contour(s) {why}" for why, count in problems.items()]
    return slices


def read_rtstruct(
    path: str | Path,
    geometry: Geometry,
    names: Sequence[str] | None = None,
    progress: Progress = no_progress,
    frame_of_reference_uid: str | None = None,
) -> RTStructImport:
    """Rasterise the closed planar contours of an RTSTRUCT onto an image grid.

    Parameters
    ----------
    path
        The RTSTRUCT file.
    geometry
        The grid of the image the structures were drawn on (the CT series).
    names
        ROI names to import (exact match); all ROIs when ``None``.
    progress
        ``progress(fraction, message) -> bool``; ``False`` cancels.
    frame_of_reference_uid
        The image's frame of reference; when given, every imported ROI must refer to it.

    Returns
    -------
    RTStructImport
        ``segmentation`` with one MANUAL segment per ROI (labels 1..n in file order, colour from
        ROIDisplayColor or a palette) and ``warnings`` (overlaps, skipped contours).

    Raises
    ------
    LoadError
        Unreadable file, not an RTSTRUCT, unknown ROI name, other frame of reference, a contour
        that is not on one slice of ``geometry``, or nothing to fill.
    Cancelled
        The progress callback returned ``False``.
    """
    path = Path(path)
    check(progress, 0.0, "Reading structure set")
    rois = _rois(path, _read(path))
    if names is not None:
        available = [info.name for info, _ in rois]
        unknown = [n for n in names if n not in available]
        if unknown:
            raise LoadError(path, f"no ROI named {', '.join(map(repr, unknown))}; the file has "
                                  f"{', '.join(map(repr, available)) or 'no ROIs'}")
        rois = [(info, item) for info, item in rois if info.name in names]
    if frame_of_reference_uid is not None:
        for info, _ in rois:
            if info.frame_of_reference_uid != frame_of_reference_uid:
                raise LoadError(path, f"ROI {info.name!r} is in frame of reference "
                                      f"{info.frame_of_reference_uid or '(none)'}, the image is "
                                      f"in {frame_of_reference_uid}: it belongs to another scan")
    if not rois:
        raise LoadError(path, "no ROIs to import (the structure set has none, or none was named)")
    segments = [
        Segment(label=n + 1, name=info.name, color=info.color or _PALETTE[n % len(_PALETTE)],
                source=SegmentSource.MANUAL)
        for n, (info, _) in enumerate(rois)
    ]
    seg = Segmentation.empty(geometry, segments)
    warnings: list[str] = []
    filled = 0
    for n, (info, item) in enumerate(rois):
        label = n + 1
        step = (n / len(rois), 1.0 / len(rois))
        slices = {} if item is None else _rasterise(path, info.name, item, geometry, progress,
                                                    step, warnings)
        if not slices:
            warnings.append(f"{info.name}: no closed contours on this image; segment is empty")
        overlapped: Counter[int] = Counter()
        for k, mask in slices.items():
            plane: npt.NDArray[Any] = seg.labelmap[k]
            under = plane[mask]
            overlapped.update(under[under != 0].tolist())
            plane[mask] = label
            filled += int(mask.any())
        for old, count in overlapped.items():
            warnings.append(f"{info.name} overlaps {seg.segment(old).name} in {count} voxels; "
                            f"the label map keeps {info.name} there (label {label})")
    if not filled:
        raise LoadError(path, "no closed planar contours to fill on this image grid")
    check(progress, 1.0, "Structure set imported")
    return RTStructImport(seg, warnings)
