"""Run long plain-Python work off the GUI thread and report back through signals."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Signal

from medseg_gui.core.progress import Cancelled, Progress

log = logging.getLogger("medseg.gui")


class TaskSignals(QObject):
    """Signals of a :class:`Task`, each carrying the task first.

    Connect them to methods of a QObject living on the GUI thread (not to lambdas): only then
    does Qt queue the call onto that thread instead of running it on the worker.
    """

    progress = Signal(float, str)
    finished = Signal(object, object)  # task, result
    failed = Signal(object, object)  # task, exception
    cancelled = Signal(object)  # task


class Task(QRunnable):
    """Runs ``fn(progress)`` on a thread pool; ``cancel()`` makes the next callback say stop.

    Parameters
    ----------
    fn
        Plain Python taking the ``progress(fraction, message) -> bool`` callback.
    """

    def __init__(self, fn: Callable[[Progress], Any]) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the owner keeps it until a signal arrives
        self.fn = fn
        self.signals = TaskSignals()
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def _progress(self, fraction: float, message: str) -> bool:
        self.signals.progress.emit(float(fraction), message)
        return not self._cancel.is_set()

    def run(self) -> None:
        try:
            result = self.fn(self._progress)
        except Cancelled:
            self.signals.cancelled.emit(self)
        except Exception as exc:  # reported to the user as one message, never a crash
            log.error("background task %s failed", getattr(self.fn, "__qualname__", self.fn),
                      exc_info=exc)  # the traceback for support, in medseg.log
            self.signals.failed.emit(self, exc)
        else:
            if self._cancel.is_set():
                self.signals.cancelled.emit(self)
            else:
                self.signals.finished.emit(self, result)
