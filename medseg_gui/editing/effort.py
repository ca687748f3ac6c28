"""Correction effort of a case: what changed versus the AI draft, and active editing time.

Recorded per case with the training queue entry, so the team can see how much correcting a
model version needs (voxels and mm^3 added/removed, Dice between draft and final, minutes of
active work).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from medseg_gui.core.metrics import dice
from medseg_gui.editing.base import LabelArray
from medseg_gui.editing.history import Edit

DEFAULT_IDLE_S = 60.0


@dataclass(frozen=True)
class Effort:
    """Correction effort of one segmentation (all labels, or one label).

    Parameters
    ----------
    voxels_added, voxels_removed
        Voxels in the current foreground but not the draft's, and the reverse.
    voxels_relabelled
        Voxels in both foregrounds whose label differs.
    mm3_added, mm3_removed
        The same in mm^3.
    dice
        Dice of the draft and current foregrounds (1.0 when both are empty).
    active_seconds
        Active editing time (see :func:`active_time`).
    n_edits
        Committed edits counted.
    """

    voxels_added: int
    voxels_removed: int
    voxels_relabelled: int
    mm3_added: float
    mm3_removed: float
    dice: float
    active_seconds: float
    n_edits: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def active_time(intervals: Iterable[tuple[float, float]], idle_s: float = DEFAULT_IDLE_S) -> float:
    """Seconds of active editing from ``(start, end)`` times of strokes and tool applications.

    The durations count in full; the gap from one action's end to the next's start counts when it
    is shorter than ``idle_s`` (the user was looking and deciding), and not at all when longer (the
    user was away). Overlapping intervals are merged.
    """
    spans = sorted((float(a), float(max(a, b))) for a, b in intervals)
    total, prev_end = 0.0, None
    for start, end in spans:
        if prev_end is not None and start <= prev_end:  # overlap: extend only
            total += max(0.0, end - prev_end)
            prev_end = max(prev_end, end)
            continue
        if prev_end is not None and start - prev_end < idle_s:
            total += start - prev_end
        total += end - start
        prev_end = end
    return total


def edit_intervals(edits: Iterable[Edit]) -> list[tuple[float, float]]:
    """``(start, end)`` of each edit (committed at ``timestamp``, took ``duration``)."""
    return [(e.timestamp - e.duration, e.timestamp) for e in edits]


def correction_effort(draft: LabelArray, current: LabelArray, spacing: Sequence[float], *,
                      label: int | None = None,
                      intervals: Iterable[tuple[float, float]] = (),
                      idle_s: float = DEFAULT_IDLE_S) -> Effort:
    """Compare the current label map with the AI draft.

    Parameters
    ----------
    draft, current
        Label maps on the same grid.
    spacing
        Voxel size in mm (any order; only the product is used).
    label
        Compare one segment's masks; ``None`` compares the foregrounds (any label).
    intervals
        ``(start, end)`` times of the edits (e.g. :func:`edit_intervals` of the journal's or
        history's edits, or the editor's own log).
    idle_s
        Gaps at least this long are not counted as active time.
    """
    if draft.shape != current.shape:
        raise ValueError(f"draft {draft.shape} and current {current.shape} differ in shape")
    if label is None:
        a, b = draft != 0, current != 0
        relabelled = int(np.count_nonzero(a & b & (draft != current)))
    else:
        a, b = draft == label, current == label
        relabelled = 0
    added = int(np.count_nonzero(b & ~a))
    removed = int(np.count_nonzero(a & ~b))
    vox = float(np.prod(np.asarray(spacing, dtype=np.float64)))
    spans = list(intervals)
    return Effort(added, removed, relabelled, added * vox, removed * vox, dice(a, b),
                  active_time(spans, idle_s), len(spans))
