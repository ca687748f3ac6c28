"""The progress/cancel protocol of every long operation.

Long work is plain Python that takes ``progress(fraction, message) -> bool``. The callee calls it
now and then with a fraction in ``[0, 1]``; a ``False`` answer means the user cancelled, and the
callee raises :class:`Cancelled` at the next safe point, leaving nothing half-written. Only the
``ui`` package knows about threads and signals: it passes a callback that emits a Qt signal and
returns the state of its Cancel button. A command line passes a :class:`TerminalProgress`.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO

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


class TerminalProgress:
    """The one terminal face of the protocol: lines ``[ 45.0%     12s] message``; never cancels.

    Parameters
    ----------
    stream
        Where to write; by default ``sys.stderr`` as it is at each report.
    log
        ``False``, a command's progress: on a terminal the line is redrawn in place (cut to the
        terminal's width) and nothing is written elsewhere, so a script reading the command's
        stderr sees only its messages. ``True``, a training log: every report is a line of its
        own, on a terminal or in a file, so the losses can be read afterwards.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> TerminalProgress(out, log=True)(0.5, "step 10/20  loss 0.3")
    True
    >>> out.getvalue().split("]")[1]  # one line, its white space folded
    ' step 10/20 loss 0.3\\n'
    """

    def __init__(self, stream: TextIO | None = None, *, log: bool = False) -> None:
        self._stream = stream
        self.log = log
        self._start = time.perf_counter()
        self._drawn = 0  # length of the line drawn in place; 0 when there is none

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def __call__(self, fraction: float, message: str) -> bool:
        elapsed = time.perf_counter() - self._start
        line = (f"[{min(max(fraction, 0.0), 1.0) * 100:5.1f}% {elapsed:6.0f}s] "
                f"{' '.join(message.split())}")
        stream = self.stream
        if self.log:
            print(line, file=stream, flush=True)
        elif stream.isatty():
            line = line[:shutil.get_terminal_size().columns - 1]
            stream.write("\r" + line.ljust(self._drawn))
            stream.flush()
            self._drawn = len(line)
        return True

    def clear(self) -> None:
        """Erase the line drawn in place, before the command prints anything else."""
        if self._drawn:
            self.stream.write("\r" + " " * self._drawn + "\r")
            self.stream.flush()
            self._drawn = 0
