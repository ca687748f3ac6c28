"""The one status of a background job: a segmentation in the inference worker or a fine-tune.

Life cycle: ``SUBMITTED -> RUNNING (<-> PAUSED) -> DONE | ERROR | CANCELLED | OUTSIDE_USE``.
``CANCELLED`` is the one name for "stopped by the user" (the Cancel button, a newer request for
the same study, the window closing), as :class:`~medseg_gui.core.progress.Cancelled` is for the
exception. Only fine-tunes are ``PAUSED`` (to yield the GPU to a segmentation), and only
segmentations end ``OUTSIDE_USE`` (the study is outside the model's intended use, so the model
was not run). Statuses live in memory only: no file stores them.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """Where a job is in its life cycle (see the module docstring)."""

    SUBMITTED = "submitted"
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"
    ERROR = "error"
    CANCELLED = "cancelled"
    OUTSIDE_USE = "outside intended use"

    @property
    def finished(self) -> bool:
        """True for the end states: nothing will change the job any more."""
        return self in (JobStatus.DONE, JobStatus.ERROR, JobStatus.CANCELLED,
                        JobStatus.OUTSIDE_USE)
