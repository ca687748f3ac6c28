""""Segment tumour" in a real window: the shipped model on the demo study, in the worker
process; the GUI keeps ticking, cancel works, edits are never silently replaced, errors are one
message."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from PySide6.QtCore import QTimer

from medseg_gui.core.segmentation import Segment, Segmentation, SegmentSource
from medseg_gui.inference.models import resolve_model
from tests.gui.workflow_helpers import SEGMENT_TIMEOUT_MS, open_demo, segment

pytestmark = pytest.mark.gui


def _wait_progress(qtbot, action) -> None:  # type: ignore[no-untyped-def]
    """Until the worker reports windows done (the model is loaded and sliding)."""
    qtbot.waitUntil(lambda: action.job is not None and "windows" in action.job.message,
                    timeout=120_000)


def test_segment_demo_gives_an_editable_ai_segmentation(qtbot, window):  # type: ignore[no-untyped-def]
    open_demo(qtbot, window)
    # Let the first (software-GL, under Xvfb) 3D render of the new study finish: that stall
    # belongs to loading, not to segmenting.
    qtbot.wait(1500)
    ticks: list[float] = []
    timer = QTimer(interval=20)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    window.segment_action.segmented.connect(timer.stop)  # the run, and applying its result
    seg = segment(qtbot, window)
    card = resolve_model()
    assert window.segmentation is seg
    assert seg.geometry.same_grid(window.volume.geometry)
    assert seg.segments and all(s.source is SegmentSource.AUTOMATIC for s in seg.segments)
    assert all(s.model == card.ref for s in seg.segments)
    assert np.count_nonzero(seg.labelmap) > 0  # the demo's tumour is found
    # The status bar says which backend and precision ran.
    summary = window.segment_action.last_summary
    assert any(b in summary for b in ("onnxruntime", "torch", "tensorrt")), summary
    assert any(p in summary for p in ("fp32", "fp16", "int8")), summary
    assert summary in window.statusBar().currentMessage()
    # The editor tracks effort against this AI draft.
    editor = window.editing.editor
    assert editor is not None and np.array_equal(editor.draft, seg.labelmap)
    # The GUI thread stayed responsive during the whole run.
    gaps = np.diff(ticks)
    assert len(ticks) > 20 and gaps.max() < 0.4, f"max gap {gaps.max():.3f} s"
    assert window.progress_bar.isHidden() and window.cancel_button.isHidden()


def test_cancel_stops_the_run_and_keeps_the_segmentation(qtbot, window):  # type: ignore[no-untyped-def]
    open_demo(qtbot, window)
    action = window.segment_action
    action.device = "cpu"
    assert action.start()
    assert window.cancel_button.isVisible()
    _wait_progress(qtbot, action)
    window.cancel_button.click()
    qtbot.waitUntil(lambda: action.job is None, timeout=30_000)
    assert window.segmentation is None
    assert "cancelled" in window.statusBar().currentMessage().lower()
    qtbot.waitUntil(lambda: all(j.finished for j in action.worker.jobs.values()), timeout=30_000)


def test_manual_edits_are_not_replaced_without_asking(qtbot, window):  # type: ignore[no-untyped-def]
    open_demo(qtbot, window)
    manual = Segmentation.empty(window.volume.geometry, [Segment(1, "my tumour")])
    manual.labelmap[10, 100:110, 100:110] = 1
    assert window.set_segmentation(manual)
    window.editing.unsaved = True  # as after a brush stroke
    action = window.segment_action
    action.device = "cpu"
    with qtbot.waitSignal(action.refused, timeout=SEGMENT_TIMEOUT_MS):
        assert action.start()
    assert window.segmentation is manual  # headless: refused, never silently replaced
    assert "Kept your edited" in window.statusBar().currentMessage()
    seg = segment(qtbot, window, force=True)  # an explicit "yes" replaces it
    assert window.segmentation is seg and seg is not manual


def test_newer_request_cancels_the_older(qtbot, window):  # type: ignore[no-untyped-def]
    open_demo(qtbot, window)
    action = window.segment_action
    action.device = "cpu"
    assert action.start()
    first = action.job
    seg = segment(qtbot, window)
    assert first is not None and first.status.value == "cancelled"
    assert window.segmentation is seg


def test_killed_worker_is_one_message_and_the_window_survives(qtbot, window):  # type: ignore[no-untyped-def]
    open_demo(qtbot, window)
    action = window.segment_action
    action.device = "cpu"
    assert action.start()
    _wait_progress(qtbot, action)
    pid = action.worker.pid(action.job.job_id)
    with qtbot.waitSignal(action.failed, timeout=30_000) as blocker:
        os.kill(pid, signal.SIGKILL)
    assert "died" in blocker.args[0]
    assert window.volume is not None and window.isVisible()
    assert action.job is None and window.progress_bar.isHidden()


def test_missing_model_is_a_clear_error(qtbot, window):  # type: ignore[no-untyped-def]
    open_demo(qtbot, window)
    action = window.segment_action
    action.model = "no-such-model"
    assert not action.start()
    assert "no model" in action.last_error and action.job is None


def test_tampered_model_is_refused(qtbot, window, tmp_path):  # type: ignore[no-untyped-def]
    import shutil

    card = resolve_model()
    folder = tmp_path / "tampered"
    shutil.copytree(card.folder, folder)
    with open(folder / "model.onnx", "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02\x03")
    open_demo(qtbot, window)
    action = window.segment_action
    action.model = str(folder)
    started = action.start()
    if started:  # the hash is checked in the worker: the error comes back as one message
        qtbot.waitUntil(lambda: action.job is None, timeout=60_000)
    assert action.last_error and window.segmentation is None


def test_a_study_outside_the_models_use_is_not_shown_as_a_draft(qtbot, window, shared_data):  # type: ignore[no-untyped-def]
    """The lung-tumour CT: no draft, the reason in the status bar; with dialogs, the dialog
    offers the AI prompt tool and choosing it selects that tool."""
    from PySide6.QtWidgets import QApplication, QMessageBox

    from medseg_gui.editing.tools import Tool

    with qtbot.waitSignal(window.studyLoaded, timeout=120_000):
        window.open_path(shared_data / "ibsi_lung" / "dicom" / "image")
    action = window.segment_action
    action.backend, action.device = "onnxruntime", "cpu"
    with qtbot.waitSignal(action.refused, timeout=SEGMENT_TIMEOUT_MS) as blocker:
        assert action.start()
    assert blocker.args[0].startswith("outside what sts-tumour-unet")
    assert window.segmentation is None and action.draft is None
    assert window.statusBar().currentMessage().startswith("Not segmented: outside what")
    assert "AI prompt tool" in window.statusBar().currentMessage()
    # The reason runs past the readout; the bar's tooltip holds the whole line.
    assert window.statusBar().toolTip() == window.statusBar().currentMessage()
    assert "Why:" in window.statusBar().toolTip()

    asked: list[str] = []

    def choose_prompt_tool() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(50, choose_prompt_tool)
            return
        asked.append(box.text())
        next(b for b in box.buttons() if "AI prompt" in b.text()).click()

    window.dialogs = True
    try:
        QTimer.singleShot(50, choose_prompt_tool)
        assert action.start()
        qtbot.waitUntil(lambda: bool(asked) and window.editing.tool is Tool.AI,
                        timeout=SEGMENT_TIMEOUT_MS)
    finally:
        window.dialogs = False
    assert "bone sections" in asked[0] and window.segmentation is None
