"""A segment's review status in the files it is exported to, and back.

The label NIfTI keeps it in its JSON sidecar with the rest of the segment table (``"review"``:
status, by, at; :meth:`medseg_gui.core.segmentation.Segment.to_dict`). The two formats other
tools read carry it where those tools look:

3D Slicer ``.seg.nrrd``
    Slicer keeps a segment's status in its ``Segment<N>_Tags`` as
    ``Segmentation.Status:<notstarted|inprogress|completed|flagged>`` (vtkSlicerSegmentations-
    ModuleLogic), and so does this writer, so that Slicer shows and edits it. Slicer has no
    "draft": a draft is written as ``notstarted``, the state of a segment nobody has worked on.
    Who set the status and when go into three tags of our own (``medseg.Review``,
    ``medseg.ReviewBy``, ``medseg.ReviewAt``); Slicer keeps tags it does not know when it saves.
    Reading trusts ``Segmentation.Status``: when it no longer matches ``medseg.Review`` (the
    status was changed in Slicer), the status is Slicer's and who and when are unknown.
    A tag value never holds ``|`` (Slicer's separator) and every tag has a ``:``, without which
    Slicer's tag parser does not advance.
DICOM SEG
    The Segment Description Macro (PS3.3 C.8.20.4) has no status attribute, and a private
    attribute would be dropped or ignored by most archives and viewers. The status goes into
    the segment's *Segment Description* (0062,0006), a standard type 3 free-text attribute
    (LO, at most 64 characters) that viewers show next to the segment label, as
    ``Review: completed by alice at 2025-01-31T14:05:09Z``; a user name too long for the 64
    characters is shortened. A description in any other form reads back as no status. (An SR
    with a qualitative evaluation per segment was the alternative; it would split one
    segmentation into two objects that must travel together.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydicom.dataset import Dataset

from medseg_gui.core.review import Review, ReviewStatus

SLICER_STATUS_TAG = "Segmentation.Status"
SLICER_STATUS = {ReviewStatus.DRAFT: "notstarted", ReviewStatus.IN_PROGRESS: "inprogress",
                 ReviewStatus.COMPLETED: "completed", ReviewStatus.FLAGGED: "flagged"}
_FROM_SLICER = {v: k for k, v in SLICER_STATUS.items()}
_TAG_STATUS, _TAG_BY, _TAG_AT = "medseg.Review", "medseg.ReviewBy", "medseg.ReviewAt"
_LO_MAX = 64
_DESCRIPTION = re.compile(r"Review: (?P<status>draft|in progress|completed|flagged)"
                          r"(?: by (?P<by>.*?))?(?: at (?P<at>\S+))?")


def _tag_value(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")


def slicer_fields(review: Review | None) -> tuple[str | None, dict[str, str]]:
    """Slicer's ``Segmentation.Status`` value and our own tags for ``review`` (slicerio's
    segment ``"status"`` and ``"tags"``); ``(None, {})`` for none."""
    if review is None:
        return None, {}
    return SLICER_STATUS[review.status], {_TAG_STATUS: review.status.value,
                                          _TAG_BY: _tag_value(review.by),
                                          _TAG_AT: _tag_value(review.at)}


def review_from_slicer(status: str | None, tags: Mapping[str, Any]) -> Review | None:
    """The review of a segment with Slicer status ``status`` and ``tags`` (as slicerio reads
    them), ``None`` without one.

    A status neither Slicer nor this app defines counts as none (Slicer's own reader
    does the same).
    """
    ours = str(tags.get(_TAG_STATUS, ""))
    mine = ReviewStatus(ours) if ours in ReviewStatus._value2member_map_ else None
    if status is None or (mine is not None and SLICER_STATUS[mine] == status):
        return None if mine is None else Review(mine, str(tags.get(_TAG_BY, "")),
                                                str(tags.get(_TAG_AT, "")))
    found = _FROM_SLICER.get(status)
    return None if found is None else Review(found)  # set in Slicer: who and when unknown


def seg_description(review: Review) -> str:
    """The Segment Description text of ``review`` (at most 64 characters)."""
    head, tail = f"Review: {review.status.value}", f" at {review.at}" if review.at else ""
    room = _LO_MAX - len(head) - len(tail) - len(" by ")
    by = review.by.replace("\\", "/")[:max(room, 0)]
    return f"{head} by {by}{tail}" if by else f"{head}{tail}"


def set_seg_review(item: Dataset, review: Review | None) -> None:
    """Write ``review`` into a SEG Segment Sequence item (nothing for ``None``)."""
    if review is not None:
        item.SegmentDescription = seg_description(review)


def seg_review(item: Dataset) -> Review | None:
    """The review a SEG Segment Sequence item holds, ``None`` when its description has none."""
    match = _DESCRIPTION.fullmatch(str(item.get("SegmentDescription", "")).strip())
    if match is None:
        return None
    return Review(ReviewStatus(match["status"]), match["by"] or "", match["at"] or "")
