"""Segment table operations: add, rename, recolour, delete, each an undoable change.

Deleting a segment clears its voxels and removes its row in one change, so one Undo brings both
back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from medseg_gui.core.review import Review, ReviewStatus
from medseg_gui.core.segmentation import Segment, Segmentation, SegmentSource
from medseg_gui.editing.base import Change, mask_bbox

PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 80, 60), (80, 170, 240), (90, 200, 90), (240, 200, 60), (180, 100, 220),
    (250, 140, 40), (60, 210, 200), (230, 110, 170), (150, 150, 80), (120, 120, 250),
)
"""Default colours of new segments, in order (distinct on a grey CT)."""


def next_label(segments: Sequence[Segment], dtype: np.dtype[np.unsignedinteger] | None = None
               ) -> int:
    """The smallest label no segment uses (1..255 for uint8 maps, ..65535 for uint16)."""
    used = {s.label for s in segments}
    limit = 65535 if dtype is None else int(np.iinfo(dtype).max)
    for v in range(1, limit + 1):
        if v not in used:
            return v
    raise ValueError("no free segment label left")


def add_segment(seg: Segmentation, name: str = "", *, color: tuple[int, int, int] | None = None,
                label: int | None = None) -> tuple[Change, Segment]:
    """A new empty manual segment, in progress; returns the change and the new row (to make
    it active)."""
    lab = next_label(seg.segments, seg.labelmap.dtype) if label is None else int(label)
    if any(s.label == lab for s in seg.segments):
        raise ValueError(f"label {lab} is already used")
    if lab > np.iinfo(seg.labelmap.dtype).max:
        raise ValueError(f"label {lab} does not fit a {seg.labelmap.dtype} label map")
    colour = color if color is not None else PALETTE[(lab - 1) % len(PALETTE)]
    row = Segment(label=lab, name=name or f"Segment {lab}", color=colour,
                  source=SegmentSource.MANUAL, review=Review.now(ReviewStatus.IN_PROGRESS))
    return Change.table_only("Add segment", [*seg.segments, row]), row


def _replace(seg: Segmentation, label: int, edit_name: str, **changes: object) -> Change:
    row = seg.segment(label)
    new_row = dataclasses.replace(row, **changes)  # type: ignore[arg-type]
    return Change.table_only(edit_name, [new_row if s.label == label else s for s in seg.segments])


def rename_segment(seg: Segmentation, label: int, name: str) -> Change:
    """Change a segment's display name."""
    return _replace(seg, label, "Rename segment", name=name)


def recolor_segment(seg: Segmentation, label: int, color: tuple[int, int, int]) -> Change:
    """Change a segment's colour (RGB 0..255)."""
    return _replace(seg, label, "Recolour segment", color=tuple(int(c) for c in color))


def delete_segment(seg: Segmentation, label: int) -> Change:
    """Remove a segment's row and clear its voxels, as one change."""
    seg.segment(label)  # KeyError for an unknown label
    table = tuple(s for s in seg.segments if s.label != label)
    region = mask_bbox(seg.labelmap == label)
    if region is None:
        return Change("Delete segment", None, None, table)
    new = seg.labelmap[region].copy()
    new[new == label] = 0
    return Change("Delete segment", region, new, table)


def mark_corrected(seg: Segmentation, label: int) -> Change | None:
    """An AI segment the user edited becomes SEMIAUTOMATIC (for DICOM SEG export)."""
    row = seg.segment(label)
    if row.source is not SegmentSource.AUTOMATIC:
        return None
    return _replace(seg, label, "Corrected", source=SegmentSource.SEMIAUTOMATIC)
