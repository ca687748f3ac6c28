"""Label-map NIfTI (``.nii.gz``) with a JSON sidecar holding the segment table.

The sidecar sits next to the image with the same stem (``case.nii.gz`` -> ``case.json``, as BIDS
does) and also records the exact grid. NIfTI keeps its affine in float32, so a reader that saw
only the image would place voxels up to ~1e-5 mm off; when the image's grid agrees with the
sidecar's to within :data:`GRID_TOL_MM`, the sidecar's float64 values are used and the round trip
is exact. A NIfTI without a sidecar still opens: every label value found becomes a segment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.segmentation import Segment, Segmentation
from medseg_gui.core.volume import geometry_of, to_sitk
from medseg_gui.io.errors import LoadError
from medseg_gui.io.imagefile import itk_reason, read_itk
from medseg_gui.io.output import atomic_output, write_text_atomic

SIDECAR_FORMAT = "medseg-labelmap"
GRID_TOL_MM = 1e-3
_PALETTE = [
    (230, 80, 60), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
]


def sidecar_path(path: str | Path) -> Path:
    """``case.nii.gz`` -> ``case.json``."""
    p = Path(path)
    name = p.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return p.with_name(name[: -len(suffix)] + ".json")
    return p.with_suffix(".json")


def default_segments(labels: list[int]) -> list[Segment]:
    """A segment table for bare label values (names ``Segment N``)."""
    return [Segment(label=v, name=f"Segment {v}", color=_PALETTE[(v - 1) % len(_PALETTE)])
            for v in labels]


def write_label_nifti(seg: Segmentation, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``seg`` as a ``.nii.gz``/``.nii`` label map plus its JSON sidecar, atomically.

    Raises
    ------
    LoadError
        Wrong suffix, the table is inconsistent, or a target exists without ``overwrite``.
    """
    p = Path(path)
    if not p.name.lower().endswith((".nii.gz", ".nii")):
        raise LoadError(p, "a label-map NIfTI must be named .nii.gz or .nii")
    problems = seg.validate()
    if problems:
        raise LoadError(p, "; ".join(problems))
    side = sidecar_path(p)
    for target in (p, side):
        if target.exists() and not overwrite:
            raise LoadError(target, "output exists; pass --force (overwrite=True) to replace it")
    doc = {
        "format": SIDECAR_FORMAT,
        "version": 1,
        "image": p.name,
        "geometry": seg.geometry.to_dict(),
        "segments": seg.table_dict(),
    }
    image = to_sitk(seg.labelmap, seg.geometry)
    # SimpleITK picks the writer from the suffix, so end the temporary name like the target.
    with atomic_output(p, overwrite=overwrite,
                       suffix=".part" + (".nii.gz" if p.name.endswith(".gz") else ".nii")) as tmp:
        try:
            sitk.WriteImage(image, str(tmp), useCompression=True)
        except RuntimeError as exc:
            raise LoadError(p, f"cannot write NIfTI: {itk_reason(exc)}") from exc
        write_text_atomic(side, json.dumps(doc, indent=2), overwrite=overwrite)
    return p


def _geometry_from_dict(d: dict[str, Any]) -> Geometry:
    i, j, k = (int(v) for v in d["size_ijk"])
    return Geometry(shape=(k, j, i), spacing=tuple(d["spacing"]), origin=tuple(d["origin"]),
                    direction=tuple(np.asarray(d["direction"], dtype=float).reshape(-1)))


def read_label_nifti(path: str | Path) -> Segmentation:
    """Read a label-map NIfTI, with its sidecar's segment table and exact grid when present.

    Raises
    ------
    LoadError
        Unreadable image, non-integer or negative labels, or a sidecar that does not match.
    """
    p = Path(path)
    image, non_finite = read_itk(p)
    if non_finite.size:
        raise LoadError(p, f"label map holds {non_finite.size} NaN or infinite value(s)")
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise LoadError(p, "a label map must be a 3D single-component image")
    arr = sitk.GetArrayFromImage(image)
    labelmap = as_labelmap(p, arr)
    geometry = geometry_of(image)
    segments: list[Segment] | None = None
    side = sidecar_path(p)
    if side.is_file():
        try:
            doc = json.loads(side.read_text(encoding="utf-8"))
            if doc.get("format") != SIDECAR_FORMAT:
                raise ValueError(f"format is {doc.get('format')!r}, not {SIDECAR_FORMAT!r}")
            exact = _geometry_from_dict(doc["geometry"])
            segments = [Segment.from_dict(s) for s in doc["segments"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise LoadError(side, f"not a valid segment-table sidecar ({exc})") from exc
        if not exact.same_grid(geometry, tol=GRID_TOL_MM):
            raise LoadError(side, "sidecar grid does not match the NIfTI header's grid")
        geometry = exact
    if segments is None:
        segments = default_segments([int(v) for v in np.unique(labelmap) if v != 0])
    seg = Segmentation(labelmap, geometry, segments)
    problems = seg.validate()
    if problems:
        raise LoadError(p, "; ".join(problems))
    return seg


def as_labelmap(path: Path, arr: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """``arr`` as uint8/uint16 if it holds integer labels 0..65535, else a LoadError."""
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.rint(arr)):
            raise LoadError(path, "label map holds non-integer values")
    elif arr.dtype.kind not in "iub":
        raise LoadError(path, f"label map has unsupported voxel type {arr.dtype}")
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if lo < 0 or hi > 65535:
        raise LoadError(path, f"label values must be 0..65535, found {lo:g}..{hi:g}")
    return arr.astype(np.uint8 if hi <= 255 else np.uint16, copy=False)
