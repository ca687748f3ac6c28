"""Per-case report: what each segment measures, as JSON and CSV.

Per segment: voxel count and volume (mL, from the voxel count and the voxel size), the longest
diameter (mm: the largest distance between two points of the segment's surface mesh, found on
the mesh's convex hull; the surface runs half-way between voxel centres, so a segment of one
voxel measures one voxel across), mean and maximum intensity (HU for CT), the
bounding box in voxel indices and LPS mm, and where the segment came from (source, model). The
case part names the study, the model versions and, when given, the correction effort.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import pdist

from medseg_gui import __version__
from medseg_gui.core.segmentation import Segmentation
from medseg_gui.core.volume import Volume
from medseg_gui.io.errors import LoadError
from medseg_gui.io.output import write_text_atomic
from medseg_gui.io.surfaces import segment_mesh


@dataclass(frozen=True)
class SegmentReport:
    label: int
    name: str
    source: str
    model: str
    voxels: int
    volume_ml: float
    longest_diameter_mm: float
    mean_value: float | None
    max_value: float | None
    bbox_ijk_min: list[int]
    bbox_ijk_max: list[int]
    bbox_lps_min_mm: list[float]
    bbox_lps_max_mm: list[float]


@dataclass(frozen=True)
class CaseReport:
    study: str
    study_uid: str
    series_uid: str
    modality: str
    grid: dict[str, object]
    software: str
    models: list[str]
    correction: dict[str, Any] = field(default_factory=dict)
    segments: list[SegmentReport] = field(default_factory=list)


def longest_diameter(points: npt.NDArray[np.float64]) -> float:
    """Largest distance between any two of ``points`` (n, 3), through their convex hull."""
    if len(points) < 2:
        return 0.0
    try:
        points = points[ConvexHull(points).vertices]
    except (QhullError, ValueError):  # flat or degenerate: all points stay candidates
        points = np.unique(np.round(points, 6), axis=0)
    return float(pdist(points).max()) if len(points) > 1 else 0.0


def build_report(seg: Segmentation, volume: Volume | None = None, *,
                 correction: dict[str, Any] | None = None) -> CaseReport:
    """Measure every segment of ``seg`` (intensities from ``volume`` when given).

    Raises
    ------
    LoadError
        ``volume`` is on another grid than ``seg`` (the report never resamples).
    """
    if volume is not None and not volume.geometry.same_grid(seg.geometry, tol=1e-3):
        raise LoadError(volume.source or "volume", "the mask is not on the study's grid")
    vol_ml = seg.voxel_volume_ml()
    rows = []
    for s in seg.segments:
        mask = seg.labelmap == s.label
        n = int(mask.sum())
        if n:
            kji = np.argwhere(mask)
            lo, hi = kji.min(axis=0)[::-1], kji.max(axis=0)[::-1]
            corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1])
                                for c in (lo[2], hi[2])], dtype=float)
            world = seg.geometry.index_to_world(corners)
            wmin, wmax = world.min(axis=0).tolist(), world.max(axis=0).tolist()
            diameter = longest_diameter(segment_mesh(seg, s.label).vertices)
            values = volume.array[mask] if volume is not None else None
        else:
            lo = hi = np.array([-1, -1, -1])
            wmin = wmax = []
            diameter, values = 0.0, None
        rows.append(SegmentReport(
            label=s.label, name=s.name, source=s.source.value, model=s.model, voxels=n,
            volume_ml=round(n * vol_ml, 4), longest_diameter_mm=round(diameter, 2),
            mean_value=None if values is None else round(float(values.mean()), 2),
            max_value=None if values is None else float(values.max()),
            bbox_ijk_min=[int(v) for v in lo], bbox_ijk_max=[int(v) for v in hi],
            bbox_lps_min_mm=[round(v, 3) for v in wmin],
            bbox_lps_max_mm=[round(v, 3) for v in wmax]))
    info = volume.info if volume is not None else None
    return CaseReport(
        study=volume.source if volume is not None else "", modality=info.modality if info else "",
        study_uid=info.study_uid if info else "", series_uid=info.series_uid if info else "",
        grid=seg.geometry.to_dict(), software=f"medseg-gui {__version__}",
        models=sorted({s.model for s in seg.segments if s.model}),
        correction=dict(correction or {}), segments=rows)


_CSV_COLUMNS = ["label", "name", "source", "model", "voxels", "volume_ml",
                "longest_diameter_mm", "mean_value", "max_value", "bbox_ijk_min", "bbox_ijk_max",
                "bbox_lps_min_mm", "bbox_lps_max_mm"]


def report_csv(report: CaseReport) -> str:
    """One row per segment (lists joined with spaces), plus study and correction columns."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["study_uid", *_CSV_COLUMNS, "correction"])
    for r in report.segments:
        d = asdict(r)
        cells = [" ".join(map(str, d[c])) if isinstance(d[c], list) else
                 ("" if d[c] is None else d[c]) for c in _CSV_COLUMNS]
        w.writerow([report.study_uid, *cells, json.dumps(report.correction, sort_keys=True)])
    return buf.getvalue()


def write_report(report: CaseReport, path: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Write ``<path>.json`` and ``<path>.csv`` (``path`` may carry either suffix), atomically."""
    p = Path(path)
    stem = p.with_suffix("") if p.suffix.lower() in (".json", ".csv") else p
    j, c = stem.with_suffix(".json"), stem.with_suffix(".csv")
    for t in (j, c):
        if t.exists() and not overwrite:
            raise LoadError(t, "output exists; pass --force (overwrite=True) to replace it")
    write_text_atomic(j, json.dumps(asdict(report), indent=2), overwrite=overwrite)
    write_text_atomic(c, report_csv(report), overwrite=overwrite)
    return [j, c]
