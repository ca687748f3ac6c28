"""Open the bundled demo study and segment it with the shipped model, in a real window."""

from __future__ import annotations

from typing import Any

from medseg_gui.core.segmentation import Segmentation
from medseg_gui.resources import DEMO_STUDY

LOAD_TIMEOUT_MS = 120_000
SEGMENT_TIMEOUT_MS = 300_000


def open_demo(qtbot: Any, window: Any) -> None:
    """Load the demo CT (no labels) and wait until it is shown."""
    with qtbot.waitSignal(window.studyLoaded, timeout=LOAD_TIMEOUT_MS):
        window.open_path(DEMO_STUDY)


def segment(qtbot: Any, window: Any, force: bool = False) -> Segmentation:
    """Run "Segment tumour" on the CPU and wait for the result to be applied."""
    action = window.segment_action
    action.backend, action.device = "auto", "cpu"
    with qtbot.waitSignal(action.segmented, timeout=SEGMENT_TIMEOUT_MS) as blocker:
        assert action.start(force=force)
    seg: Segmentation = blocker.args[0]
    return seg
