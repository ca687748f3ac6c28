"""The progress/cancel protocol of every long operation.

Long work is plain Python that takes ``progress(fraction, message) -> bool``. The callee calls it
now and then with a fraction in ``[0, 1]``; a ``False`` answer means the user cancelled, and the
callee raises :class:`Cancelled` at the next safe point, leaving nothing half-written. Only the
``ui`` package knows about threads and signals: it passes a callback that emits a Qt signal and
returns the state of its Cancel button.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[float, str], bool]


class Cancelled(Exception):
    """The user cancelled a long operation through its progress callback."""


def no_progress(fraction: float, message: str) -> bool:
    """A callback that reports nowhere and never cancels."""
    return True


def check(progress: Progress, fraction: float, message: str) -> None:
    """Report progress, raising :class:`Cancelled` when the callback says stop."""
    if not progress(min(max(fraction, 0.0), 1.0), message):
        raise Cancelled(message)


def scaled(progress: Progress, start: float, stop: float) -> Progress:
    """A callback for a sub-step that maps its ``[0, 1]`` onto ``[start, stop]`` of ``progress``.

    >>> seen = []
    >>> sub = scaled(lambda f, m: seen.append(round(f, 2)) is None, 0.5, 1.0)
    >>> sub(0.5, "half of the second half")
    True
    >>> seen
    [0.75]
    """

    def sub(fraction: float, message: str) -> bool:
        return progress(start + (stop - start) * min(max(fraction, 0.0), 1.0), message)

    return sub
