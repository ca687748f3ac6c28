"""Run by test_recovery in its own process: paint two strokes, start a third, wait to be killed.

``python -m tests.gui.crash_driver OUT_DIR`` (under the test's X server and MEDSEG_HOME). It
writes ``OUT_DIR/committed.npy`` (the label map after the two finished strokes, once their
journal records are on disk), then presses the mouse for a third stroke, moves it, writes
``OUT_DIR/ready`` and keeps the event loop running until it is killed with SIGKILL.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from medseg_gui.rendering.slicing import Orientation
from tests.gui.editing_helpers import centre, demo_volume, drag


def main(out: Path) -> None:
    app = QApplication([sys.argv[0]])
    from medseg_gui.ui.main_window import MainWindow

    window = MainWindow(dialogs=False)
    window.resize(1200, 800)
    window.show()
    QTest.qWaitForWindowExposed(window)
    window.set_volume(demo_volume())
    axial = window.views[Orientation.AXIAL]
    window.editing.set_tool("paint")
    c = centre(axial)
    drag(axial, [c, c + QPoint(40, 0), c + QPoint(60, 20)])
    drag(axial, [c + QPoint(0, 30), c + QPoint(-40, 30)])
    editor = window.editing.editor
    assert editor is not None and editor.journal is not None
    editor.journal.flush()
    np.save(out / "committed.npy", window.segmentation.labelmap)
    # A third stroke, never released: the crash loses it (at most the last stroke).
    QTest.mousePress(axial, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     c + QPoint(-30, -30))
    QTest.mouseMove(axial, c + QPoint(30, -30))
    (out / "ready").write_text("painting")
    while True:
        app.processEvents()
        time.sleep(0.01)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
