"""The Fine-tune controls of the Training queue dock, in a real window: the job runs as a
subprocess with progress and Cancel, yields to Segment tumour (paused, then resumed), and a
promotion switches Segment tumour to the new version."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from medseg_gui.core.jobs import JobStatus
from medseg_gui.core.paths import data_dir
from medseg_gui.inference.model_card import load_card
from medseg_gui.inference.registry import ModelRegistry
from medseg_gui.resources import ENGINES
from medseg_gui.training.jobs import Job
from tests.gui.workflow_helpers import SEGMENT_TIMEOUT_MS, open_demo

pytestmark = pytest.mark.gui

# TEST DOUBLE: stands in for `medseg finetune` (which needs a queue, data and minutes of GPU);
# it speaks the same PROGRESS protocol and runs until cancelled (or about 60 s).
FAKE_FINETUNE = ("import time\n"
                 "for i in range(600):\n"
                 "    print(f'PROGRESS {i / 600:.4f} step {i} of 600', flush=True)\n"
                 "    time.sleep(0.1)\n")


def fake_job(version: str, out: Path, validation: str, base: str, any_status: bool) -> Job:
    return Job([sys.executable, "-c", FAKE_FINETUNE], name="fake-finetune")


def _process_state(pid: int) -> str:
    """The kernel's one-letter state of ``pid`` (``T`` = stopped)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]


def test_finetune_shows_progress_and_cancel_stops_it(qtbot, window):  # type: ignore[no-untyped-def]
    panel = window.queue_panel.finetune
    assert panel is not None and panel.start_button.text() == "Fine-tune"
    assert panel.window() is window  # inside the Training queue dock
    panel.job_factory = fake_job
    assert panel.start(validation="/unused")
    job = panel.job
    assert job is not None and job.pid is not None and job.pid != os.getpid()
    qtbot.waitUntil(lambda: panel.progress.value() > 0, timeout=20_000)
    assert "step" in panel.label.text()
    assert panel.cancel_button.isEnabled() and not panel.start_button.isEnabled()
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: job.status is JobStatus.CANCELLED, timeout=10_000)
    assert not Path(f"/proc/{job.pid}").exists() or _process_state(job.pid) == "Z"
    qtbot.waitUntil(lambda: "cancelled" in window.statusBar().currentMessage(), timeout=5_000)
    assert panel.start_button.isEnabled()


SHIPPED = "sts-tumour-unet:1.1.0"  # the active version: the newest shipped


def _register_111() -> str:
    """A newer version of the shipped model in the user models folder (same metrics)."""
    dest = data_dir() / "models" / "sts-tumour-unet" / "1.1.1"
    shutil.copytree(ENGINES / "sts-tumour-unet" / "1.1.0", dest)
    card = load_card(dest)
    card.version = "1.1.1"
    card.save(dest)
    load_card(dest, verify=True)  # hashes still match
    return card.ref


def test_segment_pauses_the_job_and_uses_the_promoted_version(qtbot, window):  # type: ignore[no-untyped-def]
    panel = window.queue_panel.finetune
    ref = _register_111()
    assert ref == "sts-tumour-unet:1.1.1"
    assert panel.promote(ref)
    assert f"promoted {ref}" in window.statusBar().currentMessage()
    assert ModelRegistry().active("sts-tumour-unet").ref == ref
    assert window.segment_action.model_card().ref == ref

    open_demo(qtbot, window)
    panel.job_factory = fake_job
    assert panel.start(validation="/unused")
    job = panel.job
    qtbot.waitUntil(lambda: job.state().fraction > 0, timeout=20_000)
    action = window.segment_action
    action.backend, action.device = "auto", "cpu"
    try:
        with qtbot.waitSignal(action.segmented, timeout=SEGMENT_TIMEOUT_MS) as blocker:
            assert action.start(force=True)
            assert job.status is JobStatus.PAUSED  # it yields while Segment tumour runs
            qtbot.waitUntil(lambda: _process_state(job.pid) == "T", timeout=5_000)
            before = job.state().fraction
            qtbot.wait(500)
            assert job.state().fraction == before
            assert "paused" in panel.label.text()
        seg = blocker.args[0]
        assert job.status is JobStatus.RUNNING  # resumed when the segmentation ended
        qtbot.waitUntil(lambda: _process_state(job.pid) != "T", timeout=5_000)
        assert seg.segments and all(s.model == ref for s in seg.segments)
    finally:
        panel.cancel()
    assert job.status is JobStatus.CANCELLED


def test_refused_promotion_keeps_the_active_version(qtbot, window):  # type: ignore[no-untyped-def]
    panel = window.queue_panel.finetune
    dest = data_dir() / "models" / "sts-tumour-unet" / "1.1.2"
    shutil.copytree(ENGINES / "sts-tumour-unet" / "1.1.0", dest)
    card = load_card(dest)
    card.version = "1.1.2"
    card.metrics["validation_dice"]["mean"] -= 0.1  # worse: refused
    card.save(dest)
    assert not panel.promote(card.ref)
    message = window.statusBar().currentMessage()
    assert message.startswith(f"kept {SHIPPED}: "), message
    assert window.segment_action.model_card().ref == SHIPPED
