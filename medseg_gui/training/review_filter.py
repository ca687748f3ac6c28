"""Which segments training may learn from: the completed ones, unless told to take them all.

A segment a reader has not marked completed (a draft, one in progress, one flagged for a second
reader, or one whose status was never recorded) is not yet truth. The training queue
(``medseg queue add``, Send to training) and fine-tuning therefore leave such segments out by
default and say which they left out; ``--any-status`` (or the queue dock's check box) takes
them all.

Left out is not background. The queue keeps a left-out segment's voxels in the queued mask and
lists it under ``skipped_segments`` in ``meta.json``; for the automatic tumour model its voxels
are *unknown* (:func:`tumour_and_unknown`): neither tumour nor background, ignored by the loss
and never a patch centre, so a reader who completes lesion A and leaves lesion B unfinished does
not teach the model that B is background. A kept segment is tumour when its coded type is one
of the model's tumour labels' types; another abnormal structure (category "Morphologically
Abnormal Structure": a mass, a cyst, a nodule) is unknown too, since a lesion coded otherwise
may still be the tumour; a kept segment of any other category (tissue, an organ) is
background. Cases queued before this kept only their completed segments' voxels; what
they left out was cleared then and stays background.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg_gui.core.review import ReviewStatus, status_text
from medseg_gui.core.segmentation import MORPHOLOGICALLY_ABNORMAL_STRUCTURE, CodedConcept, Segment

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


def is_tumour(segment: Segment, tumour_types: Iterable[CodedConcept]) -> bool:
    """Whether ``segment``'s type is one of ``tumour_types`` (by code, not wording)."""
    return any(segment.type.same_code(t) for t in tumour_types)


def tumour_and_unknown(mask: npt.NDArray[Any], kept: Sequence[Segment],
                       tumour_types: Iterable[CodedConcept]
                       ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """What the automatic tumour model learns from a labelled ``mask`` (0..255) whose ``kept``
    segments are truth: ``(tumour, unknown)``.

    Tumour: the voxels of kept segments of a tumour type. Unknown: kept abnormal structures of
    other types, left-out segments and labels without a segment. Background: zero and kept
    segments of other categories (tissue, anatomy).
    """
    types = list(tumour_types)
    role = np.full(256, 2, np.uint8)  # 0 background, 1 tumour, 2 unknown
    role[0] = 0
    for s in kept:
        role[s.label] = 1 if is_tumour(s, types) else \
            2 if s.category.same_code(MORPHOLOGICALLY_ABNORMAL_STRUCTURE) else 0
    roles = role[np.asarray(mask, dtype=np.uint8)]
    return roles == 1, roles == 2
