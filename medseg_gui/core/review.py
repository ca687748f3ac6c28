"""A segment's review status: draft, in progress, completed, or flagged for a second reader.

The status decides what is learnt from: the training queue and fine-tuning take only completed
segments unless told otherwise. Each status records who set it (the operating-system user name)
and when (UTC, ISO 8601 to the second). The four states follow 3D Slicer's segment status
(``notstarted``, ``inprogress``, ``completed``, ``flagged``) with Slicer's "not started" named
*draft* here, since a segment nobody has worked on yet is, in this app, an AI draft; the file
formats map them both ways (:mod:`medseg_gui.io.review_status`).

How the status moves by itself (as Slicer's Segment Editor does with its "not started"):
an AI draft starts as :attr:`ReviewStatus.DRAFT`, a segment the user adds starts
:attr:`ReviewStatus.IN_PROGRESS`, and an edit of a draft's voxels (or of a segment with no status
at all, e.g. one opened from a plain label image) makes it in progress. A completed or flagged
segment keeps its status when edited: the reader who set it decides when it changes.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class ReviewStatus(StrEnum):
    """Where a segment stands in review (the value is what files and JSON hold)."""

    DRAFT = "draft"
    IN_PROGRESS = "in progress"
    COMPLETED = "completed"
    FLAGGED = "flagged"

    @property
    def text(self) -> str:
        """How the Segments list and messages say it."""
        return "flagged for a second reader" if self is ReviewStatus.FLAGGED else self.value


def current_user() -> str:
    """The operating-system user name ("unknown" where the platform has none)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name, no USER/LOGNAME (a bare container)
        return "unknown"


def now_utc() -> str:
    """The current time as ISO 8601 UTC to the second (``2025-01-31T14:05:09Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Review:
    """A review status with who set it and when.

    Parameters
    ----------
    status
        The state.
    by
        Operating-system user name of whoever set it.
    at
        When, as ISO 8601 UTC (``YYYY-MM-DDTHH:MM:SSZ``).
    """

    status: ReviewStatus
    by: str = ""
    at: str = ""

    @staticmethod
    def now(status: ReviewStatus | str, by: str | None = None) -> Review:
        """``status`` set now by ``by`` (default: the current user)."""
        return Review(ReviewStatus(status), current_user() if by is None else by, now_utc())

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status.value, "by": self.by, "at": self.at}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Review:
        """The inverse of :meth:`to_dict`; :class:`ValueError` for an unknown status."""
        return Review(ReviewStatus(str(d["status"])), str(d.get("by", "")), str(d.get("at", "")))

    def describe(self) -> str:
        """``"completed by alice, 2025-01-31 14:05 UTC"`` (for tooltips and messages)."""
        who = f" by {self.by}" if self.by else ""
        when = f", {self.at[:16].replace('T', ' ')} UTC" if self.at else ""
        return f"{self.status.text}{who}{when}"


def after_edit(review: Review | None) -> Review | None:
    """The review after a user edited the segment's voxels (see the module docstring)."""
    if review is None or review.status is ReviewStatus.DRAFT:
        return Review.now(ReviewStatus.IN_PROGRESS)
    return review


def status_text(review: Review | None) -> str:
    """The status as a short word, ``"not set"`` when none was recorded."""
    return "not set" if review is None else review.status.text
