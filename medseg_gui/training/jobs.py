"""Long jobs (fine-tuning) as subprocesses with a typed status, progress, cancel, pause/resume.

The status is :class:`~medseg_gui.core.jobs.JobStatus`, shared with the inference worker; a job
the user cancels ends ``CANCELLED``.

The child runs in its own session (``start_new_session=True``), so its process group holds it and
everything it starts (data-loader workers, ``torchrun`` ranks): cancel signals the whole group
(SIGTERM, then SIGKILL after a grace period), pause and resume send SIGSTOP/SIGCONT to it. Pausing
is how a fine-tune yields the GPU to interactive inference: the stopped process keeps its GPU
memory but uses no compute. (A grandchild that calls ``setsid`` itself escapes the group.)

The child reports progress by printing lines ``PROGRESS <fraction> <message>`` on stdout (use
:func:`print_progress` as its ``progress`` callback); other lines are kept as log. When it exits
non-zero the job's ``error`` is the last lines of its stderr. Status changes and progress are
reported from reader threads through ``on_update``; the GUI turns that into a Qt signal.
POSIX only (the signals); Windows would need job objects.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from medseg_gui.core.jobs import JobStatus

PROGRESS_PREFIX = "PROGRESS "
STDERR_TAIL = 20


@dataclass(frozen=True)
class JobState:
    """A snapshot of a job, safe to pass between threads."""

    job_id: str
    name: str
    status: JobStatus
    fraction: float
    message: str
    error: str
    returncode: int | None
    started: float | None
    finished: float | None


def print_progress(fraction: float, message: str) -> bool:
    """A ``progress`` callback for the child side: prints one protocol line, never cancels."""
    text = " ".join(message.split())
    print(f"{PROGRESS_PREFIX}{min(max(fraction, 0.0), 1.0):.4f} {text}", flush=True)
    return True


def parse_progress(line: str) -> tuple[float, str] | None:
    """``(fraction, message)`` of a protocol line, ``None`` for any other line."""
    if not line.startswith(PROGRESS_PREFIX):
        return None
    value, _, message = line[len(PROGRESS_PREFIX):].strip().partition(" ")
    try:
        fraction = float(value)
    except ValueError:
        return None
    return min(max(fraction, 0.0), 1.0), message


class Job:
    """One subprocess job.

    Parameters
    ----------
    command
        The argv to run, e.g. ``[sys.executable, "-m", "medseg_gui.training", "finetune", ...]``.
    name
        Shown in the GUI and logs.
    cwd, env
        Working folder and environment of the child (default: this process's).
    log_path
        File that receives every line the child prints (stdout and stderr), for post-mortems.
    on_update
        Called with a :class:`JobState` after every progress line and status change, from a
        reader thread.
    """

    def __init__(self, command: Sequence[str], *, name: str = "", cwd: str | Path | None = None,
                 env: dict[str, str] | None = None, log_path: str | Path | None = None,
                 on_update: Callable[[JobState], None] | None = None) -> None:
        self.command = [str(c) for c in command]
        self.job_id = uuid.uuid4().hex[:12]
        self.name = name or Path(self.command[0]).name
        self.cwd, self.env, self.on_update = cwd, env, on_update
        self.log_path = Path(log_path) if log_path is not None else None
        self._lock = threading.RLock()
        self._status = JobStatus.SUBMITTED
        self._fraction, self._message, self._error = 0.0, "", ""
        self._returncode: int | None = None
        self._started: float | None = None
        self._finished: float | None = None
        self._cancelled = False
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
        self._proc: subprocess.Popen[str] | None = None
        self._done = threading.Event()
        self._log: IO[str] | None = None

    # -- state -------------------------------------------------------------------------------
    def state(self) -> JobState:
        """The current state."""
        with self._lock:
            return JobState(self.job_id, self.name, self._status, self._fraction, self._message,
                            self._error, self._returncode, self._started, self._finished)

    @property
    def status(self) -> JobStatus:
        return self.state().status

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _set(self, **changes: object) -> None:
        with self._lock:
            for k, v in changes.items():
                setattr(self, f"_{k}", v)
            state = self.state()
        if self.on_update is not None:
            self.on_update(state)

    # -- control -----------------------------------------------------------------------------
    def start(self) -> Job:
        """Start the child; returns at once (the job runs in the background)."""
        with self._lock:
            if self._status is not JobStatus.SUBMITTED:
                raise RuntimeError(f"job {self.job_id} was already started")
            if self.log_path is not None:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                self._log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115
            env = {**os.environ, "PYTHONUNBUFFERED": "1", **(self.env or {})}
            self._proc = subprocess.Popen(
                self.command, cwd=self.cwd, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
                errors="replace", start_new_session=True)
        self._set(status=JobStatus.RUNNING, started=time.time())
        out = threading.Thread(target=self._read, args=(self._proc.stdout, False), daemon=True)
        err = threading.Thread(target=self._read, args=(self._proc.stderr, True), daemon=True)
        out.start()
        err.start()
        threading.Thread(target=self._wait, args=(out, err), daemon=True).start()
        return self

    def _signal(self, sig: int) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):  # group already gone
            os.killpg(self._proc.pid, sig)

    def pause(self) -> None:
        """Stop the job's whole process group (SIGSTOP) until :meth:`resume`."""
        with self._lock:
            if self._status is JobStatus.RUNNING:
                self._signal(signal.SIGSTOP)
                self._set(status=JobStatus.PAUSED)

    def resume(self) -> None:
        """Continue a paused job (SIGCONT)."""
        with self._lock:
            if self._status is JobStatus.PAUSED:
                self._signal(signal.SIGCONT)
                self._set(status=JobStatus.RUNNING)

    def cancel(self, grace_s: float = 5.0) -> JobState:
        """Stop the job and everything it started: SIGTERM to the group, SIGKILL after ``grace_s``.

        Returns the final state (``CANCELLED``, or ``DONE``/``ERROR`` if it had already ended).
        """
        with self._lock:
            if self._proc is None or self._status.finished:
                if self._status is JobStatus.SUBMITTED:
                    self._set(status=JobStatus.CANCELLED, finished=time.time())
                return self.state()
            self._cancelled = True
            self._signal(signal.SIGTERM)
            self._signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        if not self._done.wait(grace_s):
            self._signal(signal.SIGKILL)
        self.wait()
        return self.state()

    def wait(self, timeout: float | None = None) -> JobStatus:
        """Block until the job has finished (or ``timeout``); return its status."""
        self._done.wait(timeout)
        return self.status

    # -- threads -----------------------------------------------------------------------------
    def _read(self, stream: IO[str] | None, is_stderr: bool) -> None:
        if stream is None:
            return
        for raw in stream:
            line = raw.rstrip("\n")
            if self._log is not None:
                self._log.write(line + "\n")
                self._log.flush()
            if is_stderr:
                self._stderr.append(line)
            elif (parsed := parse_progress(line)) is not None:
                self._set(fraction=parsed[0], message=parsed[1])

    def _wait(self, *readers: threading.Thread) -> None:
        assert self._proc is not None
        rc = self._proc.wait()
        # the child is gone: nothing it started may outlive the job (its pipes close with them)
        self._signal(signal.SIGKILL)
        for r in readers:
            r.join()
        if self._log is not None:
            self._log.close()
        if self._cancelled:
            status, error = JobStatus.CANCELLED, ""
        elif rc == 0:
            status, error = JobStatus.DONE, ""
        else:
            status, error = JobStatus.ERROR, self._error_text(rc)
        self._set(status=status, error=error, returncode=rc, finished=time.time())
        self._done.set()

    def _error_text(self, rc: int) -> str:
        if rc < 0:
            name = signal.Signals(-rc).name
            why = f"{self.name} was killed by {name}"
            if -rc == signal.SIGKILL:
                why += " (out of memory?)"
        else:
            why = f"{self.name} failed (exit code {rc})"
        tail = [ln for ln in self._stderr if ln.strip()][-8:]
        return why + (":\n" + "\n".join(tail) if tail else "")


def python_job(module: str, *args: str, **kwargs: object) -> Job:
    """A :class:`Job` running ``python -m module args`` with this interpreter (not started)."""
    return Job([sys.executable, "-m", module, *args], name=module, **kwargs)  # type: ignore[arg-type]
