"""The one error type every reader and writer raises for bad input."""

from __future__ import annotations

from pathlib import Path


class LoadError(Exception):
    """Input the user gave cannot be read: names the file and the problem in one line.

    The GUI shows ``str(error)`` in a message box and the CLI prints it and exits non-zero; neither
    shows a traceback, so the message must say what is wrong and, where possible, what to do.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
