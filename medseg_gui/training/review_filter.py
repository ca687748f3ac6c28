"""Which segments training may learn from: the completed ones, unless told to take them all.

A segment a reader has not marked completed (a draft, one in progress, one flagged for a second
reader, or one whose status was never recorded) is not yet truth. The training queue
(``medseg queue add``, Send to training) and fine-tuning therefore leave such segments out by
default and say which they left out; ``--any-status`` (or the queue dock's check box) takes
them all. A segment left out of a case is cleared from its mask: its voxels count as
background for the automatic tumour model, so a reader who leaves a second lesion unfinished
should expect the model to learn that region as background from that case.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg_gui.core.review import ReviewStatus, status_text
from medseg_gui.core.segmentation import Segment

ANY_STATUS_HINT = "only completed segments are learnt from; --any-status includes them"


@dataclass(frozen=True)
class Selection:
    """The segments of one mask split into those to learn from and those left out."""

    kept: tuple[Segment, ...]
    skipped: tuple[Segment, ...]

    def describe_skipped(self) -> str:
        """``"segment 2 'Node' (draft), segment 3 'Cyst' (not set)"``; ``""`` for none."""
        return describe(self.skipped)


def describe(segments: Iterable[Segment]) -> str:
    """Segments with their status, for one line of output."""
    return ", ".join(f"segment {s.label} {s.name!r} ({status_text(s.review)})"
                     for s in segments)


def select_segments(segments: Sequence[Segment], any_status: bool = False) -> Selection:
    """Split ``segments`` into the completed ones and the rest (all kept with ``any_status``)."""
    if any_status:
        return Selection(tuple(segments), ())
    done = [s.review is not None and s.review.status is ReviewStatus.COMPLETED for s in segments]
    return Selection(tuple(s for s, ok in zip(segments, done, strict=True) if ok),
                     tuple(s for s, ok in zip(segments, done, strict=True) if not ok))


def keep_labels(mask: npt.NDArray[Any], labels: Iterable[int]) -> npt.NDArray[np.uint8]:
    """``mask`` (0..255) with every label not in ``labels`` cleared to background."""
    lut = np.zeros(256, np.uint8)
    for v in labels:
        lut[int(v)] = int(v)
    out: npt.NDArray[np.uint8] = lut[np.asarray(mask, dtype=np.uint8)]
    return out
