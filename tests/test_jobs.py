"""Subprocess jobs with real children: progress, cancel of the whole tree, pause/resume, crash."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from medseg_gui.core.jobs import JobStatus
from medseg_gui.training.jobs import Job, JobState, parse_progress, print_progress

pytestmark = pytest.mark.skipif(os.name != "posix", reason="jobs use POSIX process groups")


def _py(code: str, **kwargs: object) -> Job:
    return Job([sys.executable, "-c", code], name="test-child", **kwargs)  # type: ignore[arg-type]


def _until(pred: object, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def _gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_protocol_lines(capsys: pytest.CaptureFixture[str]) -> None:
    assert print_progress(1.5, "epoch 3\nof 10") is True
    line = capsys.readouterr().out.strip()
    assert line == "PROGRESS 1.0000 epoch 3 of 10"
    assert parse_progress(line) == (1.0, "epoch 3 of 10")
    assert parse_progress("PROGRESS 0.25") == (0.25, "")
    assert parse_progress("PROGRESS x y") is None and parse_progress("loss 0.3") is None


def test_progress_and_done(tmp_path: Path) -> None:
    seen: list[JobState] = []
    code = ("import time\nfor i in range(1, 6):\n"
            "    print(f'PROGRESS {i / 5} step {i}', flush=True)\n    print('log line')\n"
            "    time.sleep(0.02)\n")
    job = _py(code, log_path=tmp_path / "job.log", on_update=seen.append)
    assert job.status is JobStatus.SUBMITTED
    job.start()
    assert job.wait(30) is JobStatus.DONE
    st = job.state()
    assert st.returncode == 0 and st.fraction == 1.0 and st.message == "step 5" and not st.error
    fractions = [s.fraction for s in seen if s.status is JobStatus.RUNNING and s.message]
    assert fractions == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert seen[-1].status is JobStatus.DONE
    assert "log line" in (tmp_path / "job.log").read_text()
    with pytest.raises(RuntimeError, match="already started"):
        job.start()


def test_cancel_kills_child_and_grandchild() -> None:
    code = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a stubborn child: needs SIGKILL\n"
        "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        "print(f'PROGRESS 0.1 grandchild {g.pid}', flush=True)\n"
        "time.sleep(120)\n")
    job = _py(code).start()
    _until(lambda: job.state().message.startswith("grandchild"))
    grandchild = int(job.state().message.split()[1])
    child = job.pid
    assert child is not None and not _gone(grandchild) and not _gone(child)
    t0 = time.monotonic()
    st = job.cancel(grace_s=0.5)
    assert st.status is JobStatus.CANCELLED and time.monotonic() - t0 < 10
    assert st.returncode == -signal.SIGKILL and st.error == ""
    _until(lambda: _gone(grandchild) and _gone(child))


def test_pause_stops_progress_and_resume_continues() -> None:
    code = ("import time\nfor i in range(10000):\n"
            "    print(f'PROGRESS {i / 10000} tick {i}', flush=True)\n    time.sleep(0.01)\n")
    job = _py(code).start()
    _until(lambda: job.state().message.startswith("tick")
           and int(job.state().message.split()[1]) >= 5)
    job.pause()
    assert job.status is JobStatus.PAUSED
    time.sleep(0.3)  # lines already in the pipe may still arrive
    frozen = job.state().message
    time.sleep(0.7)
    assert job.state().message == frozen and job.status is JobStatus.PAUSED
    job.resume()
    assert job.status is JobStatus.RUNNING
    n = int(frozen.split()[1])
    _until(lambda: int(job.state().message.split()[1]) > n + 5)
    job.pause()  # cancel also works on a paused job
    assert job.cancel(grace_s=2).status is JobStatus.CANCELLED


def test_crash_reported_with_stderr_tail() -> None:
    code = ("import sys\nprint('PROGRESS 0.3 training', flush=True)\n"
            "print('loading cases', file=sys.stderr)\n"
            "raise RuntimeError('CUDA out of memory while allocating 2 GiB')\n")
    job = _py(code).start()
    assert job.wait(30) is JobStatus.ERROR
    st = job.state()
    assert st.returncode == 1 and st.fraction == 0.3
    assert st.error.startswith("test-child failed (exit code 1):")
    assert "RuntimeError: CUDA out of memory while allocating 2 GiB" in st.error.splitlines()[-1]


def test_killed_child_and_unstarted_cancel() -> None:
    job = _py("import os, signal; os.kill(os.getpid(), signal.SIGKILL)").start()
    assert job.wait(30) is JobStatus.ERROR
    assert "killed by SIGKILL" in job.state().error
    idle = _py("pass")
    assert idle.cancel().status is JobStatus.CANCELLED and idle.pid is None
