"""Per-case report: what each segment measures, and the study's rulers, as JSON and CSV.

Per segment: voxel count and volume (mL), the longest 3D diameter and the RECIST long and short
axes (lengths in mm, endpoints in LPS mm, the axial slice ``k``), mean, minimum and maximum
intensity (HU for CT), the bounding box in voxel indices and LPS mm, where the segment came
from (source, model) and its review status (who set it, when). The figures are
:mod:`medseg_gui.core.measurements`'s, which says how each is defined; a RECIST axis a reader
edited (:mod:`medseg_gui.core.annotations`) replaces the computed one, with
``recist_*_edited`` true and the computed length kept beside it. The case part names the study,
the model versions, the correction effort when given, and lists the rulers (length, end points,
who drew them); in the CSV each ruler is a row of its own whose ``ruler_*`` cells are filled.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medseg_gui import __version__
from medseg_gui.core.annotations import Annotations, effective_recist
from medseg_gui.core.measurements import Axis, measure_segment
from medseg_gui.core.segmentation import Segmentation
from medseg_gui.core.volume import Volume
from medseg_gui.io.errors import LoadError
from medseg_gui.io.output import write_text_atomic


@dataclass(frozen=True)
class SegmentReport:
    label: int
    name: str
    source: str
    model: str
    voxels: int
    volume_ml: float
    longest_diameter_mm: float
    longest_diameter_lps_mm: list[list[float]]  # the two endpoints, [] when empty
    recist_slice_k: int | None
    recist_long_mm: float | None
    recist_long_lps_mm: list[list[float]]
    recist_short_mm: float | None
    recist_short_lps_mm: list[list[float]]
    mean_value: float | None
    min_value: float | None
    max_value: float | None
    bbox_ijk_min: list[int]
    bbox_ijk_max: list[int]
    bbox_lps_min_mm: list[float]
    bbox_lps_max_mm: list[float]
    review_status: str | None = None
    review_by: str = ""
    review_at: str = ""
    recist_long_edited: bool = False
    recist_short_edited: bool = False
    recist_long_computed_mm: float | None = None
    recist_short_computed_mm: float | None = None


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
    rulers: list[dict[str, Any]] = field(default_factory=list)


def _ends(axis: Axis | None) -> list[list[float]]:
    return [] if axis is None else [[round(v, 3) for v in p] for p in (axis.start, axis.end)]


def _mm(axis: Axis | None) -> float | None:
    return None if axis is None else round(axis.length_mm, 2)


def build_report(seg: Segmentation, volume: Volume | None = None, *,
                 correction: dict[str, Any] | None = None,
                 annotations: Annotations | None = None) -> CaseReport:
    """Measure every segment of ``seg`` (intensities from ``volume`` when given), with the
    study's ``annotations`` (edited RECIST axes and rulers) when given.

    Raises
    ------
    LoadError
        ``volume`` is on another grid than ``seg`` (the report never resamples).
    """
    if volume is not None and not volume.geometry.same_grid(seg.geometry, tol=1e-3):
        raise LoadError(volume.source or "volume", "the mask is not on the study's grid")
    notes = annotations or Annotations()
    rows = []
    for s in seg.segments:
        m = measure_segment(seg, s.label, volume)
        axes = effective_recist(s.label, m.recist, notes)
        if m.voxels:
            kji = np.argwhere(seg.labelmap == s.label)
            lo, hi = kji.min(axis=0)[::-1], kji.max(axis=0)[::-1]
            corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1])
                                for c in (lo[2], hi[2])], dtype=float)
            world = seg.geometry.index_to_world(corners)
            wmin, wmax = world.min(axis=0).tolist(), world.max(axis=0).tolist()
        else:
            lo = hi = np.array([-1, -1, -1])
            wmin = wmax = []
        recist = m.recist
        rows.append(SegmentReport(
            label=s.label, name=s.name, source=s.source.value, model=s.model, voxels=m.voxels,
            volume_ml=round(m.volume_ml, 4), longest_diameter_mm=round(m.longest_diameter_mm, 2),
            longest_diameter_lps_mm=_ends(m.diameter),
            recist_slice_k=_slice_k(seg, recist.k if recist else None, axes.long),
            recist_long_mm=_mm(axes.long), recist_long_lps_mm=_ends(axes.long),
            recist_short_mm=_mm(axes.short), recist_short_lps_mm=_ends(axes.short),
            mean_value=None if m.mean is None else round(m.mean, 2),
            min_value=m.minimum, max_value=m.maximum,
            bbox_ijk_min=[int(v) for v in lo], bbox_ijk_max=[int(v) for v in hi],
            bbox_lps_min_mm=[round(v, 3) for v in wmin],
            bbox_lps_max_mm=[round(v, 3) for v in wmax],
            review_status=s.review.status.value if s.review else None,
            review_by=s.review.by if s.review else "", review_at=s.review.at if s.review else "",
            recist_long_edited=axes.long_edit is not None,
            recist_short_edited=axes.short_edit is not None,
            recist_long_computed_mm=_mm(recist.long if recist else None),
            recist_short_computed_mm=_mm(recist.short if recist else None)))
    info = volume.info if volume is not None else None
    return CaseReport(
        study=volume.source if volume is not None else "", modality=info.modality if info else "",
        study_uid=info.study_uid if info else "", series_uid=info.series_uid if info else "",
        grid=seg.geometry.to_dict(), software=f"medseg-gui {__version__}",
        models=sorted({s.model for s in seg.segments if s.model}),
        correction=dict(correction or {}), segments=rows,
        rulers=[{**r.to_dict(), "length_mm": round(r.length_mm, 2)} for r in notes.rulers])


def _slice_k(seg: Segmentation, computed_k: int | None, long: Axis | None) -> int | None:
    """The RECIST slice: the computed one, or the one an edited axis lies on without it."""
    if computed_k is not None or long is None:
        return computed_k
    return int(np.rint(seg.geometry.world_to_index(long.start)[2]))


_CSV_COLUMNS = ["label", "name", "source", "model", "voxels", "volume_ml",
                "longest_diameter_mm", "longest_diameter_lps_mm", "recist_slice_k",
                "recist_long_mm", "recist_long_lps_mm", "recist_short_mm", "recist_short_lps_mm",
                "mean_value", "min_value", "max_value", "bbox_ijk_min", "bbox_ijk_max",
                "bbox_lps_min_mm", "bbox_lps_max_mm", "review_status", "review_by",
                "review_at", "recist_long_edited", "recist_short_edited",
                "recist_long_computed_mm", "recist_short_computed_mm"]
_RULER_COLUMNS = ["ruler_length_mm", "ruler_lps_mm", "ruler_by", "ruler_at"]


def _cell(value: Any) -> Any:
    """A CSV cell: lists (endpoint pairs flattened) joined with spaces, ``None`` empty."""
    if isinstance(value, list):
        return " ".join(map(str, np.ravel(value).tolist()))
    return "" if value is None else value


def report_csv(report: CaseReport) -> str:
    """One row per segment, plus study and correction columns, then one row per ruler (its
    ``ruler_*`` columns filled, the segment columns empty)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["study_uid", *_CSV_COLUMNS, "correction", *_RULER_COLUMNS])
    for r in report.segments:
        d = asdict(r)
        w.writerow([report.study_uid, *(_cell(d[c]) for c in _CSV_COLUMNS),
                    json.dumps(report.correction, sort_keys=True), *[""] * len(_RULER_COLUMNS)])
    for n, ruler in enumerate(report.rulers, start=1):
        row = {"name": f"Ruler {n}"}
        w.writerow([report.study_uid, *(row.get(c, "") for c in _CSV_COLUMNS), "",
                    ruler["length_mm"], _cell([ruler["start_lps_mm"], ruler["end_lps_mm"]]),
                    ruler["by"], ruler["at"]])
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
