"""The progress/cancel protocol of every long operation.

Long work is plain Python that takes ``progress(fraction, message) -> bool``. The callee calls it
now and then with a fraction in ``[0, 1]``; a ``False`` answer means the user cancelled, and the
callee raises :class:`Cancelled` at the next safe point, leaving nothing half-written. Only the
``ui`` package knows about threads and signals: it passes a callback that emits a Qt signal and
returns the state of its Cancel button. A command line passes a :class:`TerminalProgress`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from tqdm import tqdm

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
    """The one terminal face of the protocol, drawn by tqdm; never cancels.

    Why tqdm (a runtime dependency since issue 20): it is the progress meter of the Python
    scientific stack (MONAI, torch hubs), a single pure-Python package with no dependencies of
    its own, and it already knows what a hand-written printer had to: redrawing one line in
    place cut to the terminal's width, staying silent when stderr is not a terminal, and the
    elapsed/remaining estimate. (rich, the other candidate, pulls in pygments and
    markdown-it-py, and in a CI log shows a progress bar only as its final frame.)

    Parameters
    ----------
    stream
        Where to write; by default ``sys.stderr`` as it is at each report.
    log
        ``False``, a command's progress: on a terminal tqdm redraws the line in place and
        nothing is written elsewhere, so a script reading the command's stderr sees only its
        messages. ``True``, a training log: every report is a line of its own, on a terminal or
        in a file (a CI log), in tqdm's meter format, so the losses can be read afterwards.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> TerminalProgress(out, log=True)(0.5, "step 10/20  loss 0.3")
    True
    >>> out.getvalue().split("] ")[1]  # one line, its white space folded
    'step 10/20 loss 0.3\\n'
    """

    STEPS = 1000  # the meter counts fractions in thousandths
    FORMAT = "[{percentage:5.1f}% {elapsed}<{remaining}] {desc}"

    def __init__(self, stream: TextIO | None = None, *, log: bool = False) -> None:
        self._stream = stream
        self.log = log
        self._start = time.perf_counter()
        self._bar: tqdm[Any] | None = None  # the in-place meter, made at the first report

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def __call__(self, fraction: float, message: str) -> bool:
        n = round(min(max(fraction, 0.0), 1.0) * self.STEPS)
        text = " ".join(message.split())
        if self.log:
            line = tqdm.format_meter(n, self.STEPS, time.perf_counter() - self._start,
                                     bar_format=self.FORMAT, prefix=text)
            print(line, file=self.stream, flush=True)
            return True
        if self._bar is None:
            # disable=None: silent unless the stream is a terminal; leave=False: clear() and
            # the end of the command wipe the line; the first report is drawn at once.
            self._bar = tqdm(total=self.STEPS, initial=n, desc=text, file=self.stream,
                             disable=None, leave=False, bar_format=self.FORMAT,
                             dynamic_ncols=True, mininterval=0.1)
        elif not self._bar.disable:
            self._bar.set_description_str(text, refresh=False)
            self._bar.update(n - self._bar.n)  # drawn at most every 0.1 s
        return True

    def clear(self) -> None:
        """Erase the line drawn in place, before the command prints anything else."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
