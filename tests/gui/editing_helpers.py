"""Real mouse events on the slice views, and where they land in the label map.

Used by the editing GUI tests and by the crash-recovery driver (a separate process).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest

from medseg_gui.core.volume import Volume
from medseg_gui.resources import DEMO_STUDY

LEFT_BUTTON = Qt.MouseButton.LeftButton
NO_MODS = Qt.KeyboardModifier.NoModifier


def shown_window(qtbot: Any, width: int = 1400, height: int = 900, *,
                 active: bool = True) -> Any:
    """A main window without dialogs, shown at ``width`` x ``height`` (and active: key events
    reach it); ``qtbot`` closes it with the test."""
    from medseg_gui.ui.main_window import MainWindow

    w = MainWindow(dialogs=False)
    qtbot.addWidget(w)
    w.resize(width, height)
    w.show()
    qtbot.waitExposed(w)
    if active:
        w.activateWindow()
        qtbot.waitActive(w)
    return w


@cache
def demo_volume() -> Volume:
    """The bundled STS_008 CT (51 x 137 x 141 voxels, 0.98 x 0.98 x 3.27 mm)."""
    from medseg_gui.io.loader import load_volume

    return load_volume(DEMO_STUDY)


def centre(widget) -> QPoint:  # type: ignore[no-untyped-def]
    return QPoint(widget.width() // 2, widget.height() // 2)


def drag(widget, points: Sequence[QPoint], modifiers=NO_MODS) -> None:  # type: ignore[no-untyped-def]
    """Press at the first point, move through the others, release at the last (left button)."""
    QTest.mousePress(widget, LEFT_BUTTON, modifiers, points[0])
    for p in points[1:]:
        QTest.mouseMove(widget, p)
    QTest.mouseRelease(widget, LEFT_BUTTON, modifiers, points[-1])


def voxel_at(window, widget, pos: QPoint) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    """The label map voxel ``(k, j, i)`` under a widget position, mapped through the view."""
    world = widget.world_at(QPointF(pos))
    i, j, k = np.rint(window.segmentation.geometry.world_to_index(world)).astype(int)
    return int(k), int(j), int(i)


def label_at(window, widget, pos: QPoint) -> int:  # type: ignore[no-untyped-def]
    return int(window.segmentation.labelmap[voxel_at(window, widget, pos)])
