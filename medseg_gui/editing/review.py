"""Review status as edits: setting it is one undo step, and a voxel edit moves it on.

Both change only the segment table, so they travel the way every table change does: in the
undo history, in the crash journal (each edit record carries the table after it) and into every
exported file. :mod:`medseg_gui.core.review` says which status an edit leads to.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence

from medseg_gui.core.review import Review, ReviewStatus, after_edit
from medseg_gui.core.segmentation import Segment, Segmentation, SegmentSource
from medseg_gui.editing.base import Change


def set_status(seg: Segmentation, label: int, status: ReviewStatus | str,
               by: str | None = None) -> Change:
    """Segment ``label``'s review status set to ``status`` now, by ``by`` (default: the
    current user), as the undo step ``"Status: <status>"``."""
    seg.segment(label)  # KeyError for an unknown label
    review = Review.now(status, by)
    table = [dataclasses.replace(s, review=review) if s.label == label else s
             for s in seg.segments]
    return Change.table_only(f"Status: {review.status.text}", table)


def may_follow_edits(segments: Sequence[Segment]) -> bool:
    """Whether a voxel edit can change any row (an AI segment, a draft or no status): when
    not, the editor skips looking at which labels an edit touched."""
    return any(s.source is SegmentSource.AUTOMATIC or s.review is None
               or s.review.status is ReviewStatus.DRAFT for s in segments)


def after_voxel_edit(segments: Sequence[Segment], touched: Collection[int]) -> list[Segment]:
    """The table after an edit changed the voxels of the labels ``touched``.

    An AI segment becomes SEMIAUTOMATIC (DICOM SEG's algorithm type for a corrected AI mask) and
    a draft, or a segment without a status, becomes in progress; other rows are unchanged.
    """
    out = []
    for s in segments:
        if s.label in touched:
            source = SegmentSource.SEMIAUTOMATIC if s.source is SegmentSource.AUTOMATIC \
                else s.source
            s = dataclasses.replace(s, source=source, review=after_edit(s.review))
        out.append(s)
    return out
