"""Layouts (2x2, 1x3, single focused view) from the toolbar and keys, persisted; overlay opacity
and outline; auto window from the histogram."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from medseg_gui.rendering.slicing import Orientation
from medseg_gui.ui import settings
from tests.gui.conftest import LEFT, centroid, marker_segmentation, marker_volume, red

pytestmark = pytest.mark.gui


def _visible(window) -> list[int]:  # type: ignore[no-untyped-def]
    return [n for n, f in enumerate(window.view_layout.frames) if f.isVisible()]


def test_switch_layouts_from_toolbar_and_keys(window, qtbot):  # type: ignore[no-untyped-def]
    assert window.view_layout.layout_name == "2x2" and _visible(window) == [0, 1, 2, 3]
    window.layout_actions["1x3"].trigger()
    assert _visible(window) == [0, 1, 2]
    frames = window.view_layout.frames
    # One row: the three views share their top edge once the layout has run.
    qtbot.waitUntil(lambda: len({frames[n].geometry().y() for n in range(3)}) == 1, timeout=2000)

    # Ctrl+3: single view of the view that has focus (coronal here).
    coronal = window.views[Orientation.CORONAL]
    qtbot.mouseClick(coronal, Qt.MouseButton.LeftButton, pos=coronal.rect().center())
    assert window.view_layout.focused == 1
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=3000)
    qtbot.keyClick(window, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: _visible(window) == [1], timeout=2000)
    assert window.layout_actions["single"].isChecked()
    qtbot.waitUntil(lambda: abs(frames[1].width() - window.view_layout.width()) < 10,
                    timeout=2000)
    # Ctrl+3 again moves on to the next view; Ctrl+1 back to 2x2.
    qtbot.keyClick(window, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: _visible(window) == [2], timeout=2000)
    qtbot.keyClick(window, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: _visible(window) == [0, 1, 2, 3], timeout=2000)
    assert settings.get_str("view/layout") == "2x2"


def test_layout_is_restored_from_settings(qtbot):  # type: ignore[no-untyped-def]
    from medseg_gui.ui.main_window import MainWindow

    settings.set_value("view/layout", "1x3")
    w = MainWindow(dialogs=False)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    assert w.view_layout.layout_name == "1x3" and w.layout_actions["1x3"].isChecked()
    assert _visible(w) == [0, 1, 2]


def test_overlay_opacity_and_outline(window, qtbot):  # type: ignore[no-untyped-def]
    volume = marker_volume("lps-iso", LEFT)
    window.set_volume(volume)
    window.set_segmentation(marker_segmentation(volume, LEFT))
    window.set_crosshair(LEFT)
    controls = window.overlay_controls
    controls.slider.setValue(100)
    axial = window.views[Orientation.AXIAL]
    filled = red(axial.capture())
    cx, cy = centroid(filled)
    assert filled[int(cy), int(cx)]

    controls.outline.setChecked(True)
    outline = red(axial.capture())
    assert 20 < outline.sum() < filled.sum() * 0.8
    assert not outline[int(cy), int(cx)]  # the middle of the marker is no longer painted
    ox, oy = centroid(outline)
    assert abs(ox - cx) < 3 and abs(oy - cy) < 3  # the outline is around the same place

    controls.slider.setValue(0)
    assert red(axial.capture()).sum() == 0
    assert settings.get_str("overlay/outline") == "true"
    assert settings.get_str("overlay/opacity") == "0"


def test_auto_window_from_histogram(window):  # type: ignore[no-untyped-def]
    volume = marker_volume("lps-iso", LEFT)
    rng = np.random.default_rng(0)
    body = volume.array > -2000
    volume.array[body] = rng.normal(60, 40, int(body.sum())).astype(np.int16)
    window.set_volume(volume)
    window.set_window_level(2000, 500)
    window.auto_window_action.trigger()
    width, level = window.views[Orientation.AXIAL].view.window_level
    assert 100 < width < 250 and 40 < level < 80  # about mean +- 2 sd of the tissue
