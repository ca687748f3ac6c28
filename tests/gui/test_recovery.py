"""No lost work: kill -9 the app mid-session, start again, recover the painted voxels."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QMessageBox

from medseg_gui.editing.journal import unfinished_sessions
from medseg_gui.rendering.slicing import Orientation
from medseg_gui.ui.recovery import pending_sessions
from tests.gui.editing_helpers import centre, demo_volume, drag
from tests.gui.test_editing import win  # noqa: F401  (the fixture)

pytestmark = pytest.mark.gui
ROOT = Path(__file__).resolve().parents[2]


def crash_a_painting_session(out: Path) -> np.ndarray:
    """Run the driver in a subprocess (same X server, same MEDSEG_HOME) and SIGKILL it."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "tests.gui.crash_driver", str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while not (out / "ready").exists():
            if proc.poll() is not None:
                pytest.fail(f"driver exited: {proc.stdout.read().decode()[-2000:]}")  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                pytest.fail("driver did not start painting")
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    return np.load(out / "committed.npy")


def test_kill_9_then_recover(win, tmp_path):  # type: ignore[no-untyped-def]  # noqa: F811
    committed = crash_a_painting_session(tmp_path)
    assert committed.any()
    sessions = pending_sessions()
    assert len(sessions) == 1 and sessions[0].n_edits >= 2  # add segment + two strokes
    assert win.recover_session(sessions[0].folder)
    # Everything up to the last finished stroke is back; the stroke in progress is lost.
    np.testing.assert_array_equal(win.segmentation.labelmap, committed)
    assert [s.name for s in win.segmentation.segments] == ["Segment 1"]
    assert win.segment_panel.labels() == [1]
    # The recovered session is offered once, then continues in a new journal.
    assert not (sessions[0].folder / "journal.msj").exists()
    win.editing.undo()  # nothing to undo in the new session: the recovered map stays
    np.testing.assert_array_equal(win.segmentation.labelmap, committed)
    # Still not exported: closing keeps it recoverable.
    win.close()
    assert len(unfinished_sessions()) == 1


def test_sessions_without_edits_are_not_offered(win):  # type: ignore[no-untyped-def]  # noqa: F811
    from medseg_gui.core.segmentation import Segmentation

    win.set_segmentation(Segmentation.empty(demo_volume().geometry))
    win.set_segmentation(None)  # nothing edited: no question, nothing to recover
    assert pending_sessions() == [] and unfinished_sessions() == []
    win.segment_panel.add_segment()
    win.editing.undo()
    # An edit, even undone, keeps the session recoverable until it is exported.
    assert win.set_segmentation(None) is False
    win.close()
    assert len(pending_sessions()) == 1


def test_recovery_dialog_at_start(qtbot, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    from medseg_gui.ui.main_window import MainWindow

    committed = crash_a_painting_session(tmp_path)
    asked = []

    def yes(*args):  # type: ignore[no-untyped-def]
        asked.append(args[2])
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr("medseg_gui.ui.recovery.QMessageBox.question", yes)
    w = MainWindow(dialogs=True)
    qtbot.addWidget(w)
    w.show()
    # The dialog names the session; accepting reopens the study from its path and recovers.
    qtbot.waitUntil(lambda: w.segmentation is not None, timeout=60000)
    assert "2 edit(s)" in asked[0] or "3 edit(s)" in asked[0]
    np.testing.assert_array_equal(w.segmentation.labelmap, committed)
    assert not pending_sessions() or pending_sessions()[0].folder != tmp_path
    w.editing.close_session()
    w.close()


def test_painting_after_recovery_is_journaled_again(win, tmp_path):  # type: ignore[no-untyped-def]  # noqa: F811
    committed = crash_a_painting_session(tmp_path)
    win.recover_session(pending_sessions()[0].folder)
    axial = win.views[Orientation.AXIAL]
    win.editing.set_tool("erase")
    drag(axial, [centre(axial)])
    after = win.segmentation.labelmap.copy()
    assert not np.array_equal(after, committed)
    win.editing.editor.journal.flush()
    from medseg_gui.editing.journal import recover

    rec = recover(pending_sessions()[0].folder)
    np.testing.assert_array_equal(rec.labelmap, after)
