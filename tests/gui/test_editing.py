"""Brush, eraser, undo and brush keys with real mouse events on the demo CT (real X server)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from medseg_gui.core.segmentation import Segmentation
from medseg_gui.editing import BrushShape
from medseg_gui.rendering.slicing import Orientation
from tests.gui.editing_helpers import centre, demo_volume, drag, label_at, voxel_at

pytestmark = pytest.mark.gui


@pytest.fixture
def win(qtbot) -> Iterator[object]:  # type: ignore[no-untyped-def]
    from medseg_gui.ui.main_window import MainWindow

    w = MainWindow(dialogs=False)
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    qtbot.waitExposed(w)
    w.activateWindow()  # menu shortcuts (Ctrl+Z, [ ]) need the active window
    qtbot.waitActive(w)
    w.set_volume(demo_volume())
    w.render_all()
    yield w
    w.close()


def stroke_points(widget, dx: int = 60, dy: int = 0, steps: int = 2) -> list[QPoint]:  # type: ignore[no-untyped-def]
    """A fast drag: only ``steps`` mouse moves over the whole distance."""
    c = centre(widget)
    return [c + QPoint(round(dx * n / steps), round(dy * n / steps)) for n in range(steps + 1)]


def test_paint_in_axial_view_changes_the_voxels_under_the_mouse(win):  # type: ignore[no-untyped-def]
    axial = win.views[Orientation.AXIAL]
    win.editing.set_tool("paint")
    win.editing.set_brush(diameter_mm=6.0, shape=BrushShape.DISC)
    before = axial.capture()
    points = stroke_points(axial, dx=60, steps=2)
    drag(axial, points)
    seg = win.segmentation
    assert seg is not None and [s.label for s in seg.segments] == [1]  # created on first paint
    # Every voxel along the (fast) drag is painted: no gaps between the two mouse moves.
    for x in range(0, 61, 5):
        assert label_at(win, axial, centre(axial) + QPoint(x, 0)) == 1, x
    # A 6 mm disc: 10 mm above the stroke stays empty; all paint is on the clicked slice.
    assert label_at(win, axial, centre(axial) + QPoint(30, -40)) == 0
    k0 = voxel_at(win, axial, points[0])[0]
    ks = np.unique(np.nonzero(seg.labelmap)[0])
    assert ks.tolist() == [k0]
    # The overlay shows it: the pixel under the stroke turned towards the segment's red.
    after = axial.capture()
    p = centre(axial) + QPoint(30, 4)  # off the crosshair line
    assert int(after[p.y(), p.x(), 0]) - int(after[p.y(), p.x(), 2]) > \
        int(before[p.y(), p.x(), 0]) - int(before[p.y(), p.x(), 2]) + 30
    # The segment the first stroke created and the stroke are one step: one Ctrl+Z, no trace.
    assert win.edit_actions.undo.text() == "&Undo Add segment + Paint"
    win.edit_actions.undo.trigger()
    assert seg.segments == [] and not seg.labelmap.any()


def test_erase_removes_only_what_it_touches(win):  # type: ignore[no-untyped-def]
    axial = win.views[Orientation.AXIAL]
    win.editing.set_tool("paint")
    win.editing.set_brush(diameter_mm=8.0)
    drag(axial, stroke_points(axial, dx=80, steps=8))
    win.editing.set_tool("erase")
    win.editing.set_brush(diameter_mm=4.0)
    c = centre(axial)
    drag(axial, [c + QPoint(40, -30), c + QPoint(40, 30)])  # a vertical cut through the middle
    assert label_at(win, axial, c + QPoint(40, 0)) == 0
    assert label_at(win, axial, c + QPoint(5, 0)) == 1
    assert label_at(win, axial, c + QPoint(75, 0)) == 1
    assert win.edit_actions.undo.text() == "&Undo Erase"


@pytest.mark.parametrize("orientation", [Orientation.CORONAL, Orientation.SAGITTAL])
def test_paint_in_coronal_and_sagittal(win, orientation):  # type: ignore[no-untyped-def]
    widget = win.views[orientation]
    win.editing.set_tool("paint")
    win.editing.set_brush(diameter_mm=5.0, shape=BrushShape.DISC)
    points = stroke_points(widget, dx=30, dy=40, steps=3)
    drag(widget, points)
    for p in points:
        assert label_at(win, widget, p) == 1
    # The disc lies in the view's plane: one coronal (j) or sagittal (i) index only.
    k, j, i = np.nonzero(win.segmentation.labelmap)
    across = j if orientation is Orientation.CORONAL else i
    assert np.unique(across).size == 1
    assert np.unique(k).size > 3  # it spans several axial slices


def test_sphere_brush_paints_several_slices(win):  # type: ignore[no-untyped-def]
    axial = win.views[Orientation.AXIAL]
    win.editing.set_tool("paint")
    win.editing.set_brush(diameter_mm=12.0, shape=BrushShape.SPHERE)
    drag(axial, [centre(axial)])
    ks = np.unique(np.nonzero(win.segmentation.labelmap)[0])
    assert ks.size == 3  # 12 mm over 3.27 mm slices: the clicked slice and one either side


def test_undo_redo_restore_exactly(win, qtbot):  # type: ignore[no-untyped-def]
    axial = win.views[Orientation.AXIAL]
    win.editing.set_tool("paint")
    drag(axial, stroke_points(axial, dx=50, steps=5))
    first = win.segmentation.labelmap.copy()
    drag(axial, stroke_points(axial, dx=0, dy=50, steps=5))
    second = win.segmentation.labelmap.copy()
    assert not np.array_equal(first, second)
    qtbot.keyClick(axial, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(win.segmentation.labelmap, first)
    qtbot.keyClick(axial, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(win.segmentation.labelmap, second)
    win.editing.undo()
    win.editing.undo()
    assert not win.segmentation.labelmap.any()
    win.edit_actions.redo.trigger()
    np.testing.assert_array_equal(win.segmentation.labelmap, first)
    assert win.edit_actions.redo.text() == "&Redo Paint"


def test_escape_cancels_a_stroke(win):  # type: ignore[no-untyped-def]
    axial = win.views[Orientation.AXIAL]
    win.editing.set_tool("paint")
    c = centre(axial)
    QTest.mousePress(axial, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, c)
    QTest.mouseMove(axial, c + QPoint(30, 0))
    assert win.segmentation.labelmap.any()
    QTest.keyClick(axial, Qt.Key.Key_Escape)
    QTest.mouseRelease(axial, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                       c + QPoint(30, 0))
    assert not win.segmentation.labelmap.any()


def shift_wheel(widget, notches: int) -> None:  # type: ignore[no-untyped-def]
    pos = QPointF(centre(widget))
    ev = QWheelEvent(pos, widget.mapToGlobal(pos), QPoint(0, 0), QPoint(0, 120 * notches),
                     Qt.MouseButton.NoButton, Qt.KeyboardModifier.ShiftModifier,
                     Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, ev)


def test_brush_size_keys_wheel_cursor_and_shape(win, qtbot):  # type: ignore[no-untyped-def]
    axial = win.views[Orientation.AXIAL]
    c = win.editing
    c.set_tool("paint")
    c.set_brush(diameter_mm=10.0)
    QTest.mouseMove(axial, centre(axial))
    cursor = c.cursors[Orientation.AXIAL]
    assert cursor.visible and cursor.radius_mm == pytest.approx(5.0)
    qtbot.keyClick(axial, Qt.Key.Key_BracketRight)
    assert c.brush.diameter_mm == pytest.approx(12.0)
    assert win.tool_panel.diameter.value() == pytest.approx(12.0)
    qtbot.keyClick(axial, Qt.Key.Key_BracketLeft)
    qtbot.keyClick(axial, Qt.Key.Key_BracketLeft)
    assert c.brush.diameter_mm == pytest.approx(8.3)
    slice_before = axial.view.slice_index
    shift_wheel(axial, 2)
    assert c.brush.diameter_mm == pytest.approx(12.0)
    assert axial.view.slice_index == slice_before  # shift+wheel sizes, it does not scroll
    assert cursor.radius_mm == pytest.approx(6.0)
    # The cursor circle is the brush size on screen: 12 mm between its left and right edges.
    world = axial.world_at(QPointF(centre(axial)))
    right = world + axial.view.layout.rotation[:, 0] * 6.0
    x0, _ = axial.view.world_to_display(world)
    x1, _ = axial.view.world_to_display(right)
    rgb = axial.capture()
    y = centre(axial).y()
    ring_x = round(centre(axial).x() + (x1 - x0))
    assert np.abs(rgb[y, ring_x - 1: ring_x + 2].astype(int) - rgb[y, ring_x + 6].astype(int)
                  ).max() > 40
    shape = c.brush.shape
    qtbot.keyClick(axial, Qt.Key.Key_D)
    assert c.brush.shape is not shape and win.tool_panel.sphere.isChecked() == (
        c.brush.shape is BrushShape.SPHERE)
    qtbot.keyClick(axial, Qt.Key.Key_N)
    assert c.tool == "navigate" and not cursor.visible


def test_navigate_mode_still_moves_the_crosshair(win):  # type: ignore[no-untyped-def]
    axial = win.views[Orientation.AXIAL]
    before = win.crosshair.copy()
    win.editing.set_tool("paint")
    drag(axial, [centre(axial) + QPoint(40, 0)])
    np.testing.assert_allclose(win.crosshair, before)  # painting leaves the crosshair alone
    win.editing.set_tool("navigate")
    drag(axial, [centre(axial) + QPoint(40, 0)])
    assert not np.allclose(win.crosshair, before)


def test_intensity_limited_paint(win):  # type: ignore[no-untyped-def]
    from medseg_gui.editing import PaintConstraint

    axial = win.views[Orientation.AXIAL]
    win.editing.set_tool("paint")
    win.editing.set_brush(diameter_mm=40.0, constraint=PaintConstraint.preset("Soft tissue"))
    drag(axial, stroke_points(axial, dx=40, steps=4))
    painted = win.segmentation.labelmap == 1
    hu = demo_volume().array[painted]
    assert painted.sum() > 100 and hu.min() >= -100 and hu.max() <= 300
    # The same stroke without the limit paints more (fat and bone are under the brush).
    win.editing.undo()
    win.editing.set_brush(constraint=PaintConstraint())
    drag(axial, stroke_points(axial, dx=40, steps=4))
    assert (win.segmentation.labelmap == 1).sum() > painted.sum()


def test_replacing_edits_is_refused_unless_forced(win):  # type: ignore[no-untyped-def]
    axial = win.views[Orientation.AXIAL]
    win.editing.set_tool("paint")
    drag(axial, [centre(axial)])
    edited = win.segmentation
    other = Segmentation.empty(demo_volume().geometry)
    assert win.confirm_replace_edits() is False
    assert win.set_segmentation(other) is False and win.segmentation is edited
    assert win.set_segmentation(other, force=True) is True and win.segmentation is other


def test_3d_view_hears_about_edits_debounced(win, qtbot):  # type: ignore[no-untyped-def]
    calls, painting = [], []
    win.editing.settled.connect(lambda: calls.append(1))  # the window connects the 3D view
    win.editing.gestureChanged.connect(lambda on: painting.append((on, win.view3d.busy)))
    axial = win.views[Orientation.AXIAL]
    win.editing.set_tool("paint")
    for dy in (0, 20, 40):  # three quick strokes: one rebuild request after the last
        drag(axial, stroke_points(axial, dx=30, dy=dy, steps=3))
    assert calls == []
    # the 3D view held its frames during each stroke and is free after it
    assert painting == [(True, True), (False, False)] * 3
    qtbot.waitUntil(lambda: calls == [1], timeout=3000)
    with qtbot.waitSignal(win.view3d.surfacesBuilt, timeout=20000) as built:
        pass  # the request reached the 3D view: its surfaces are rebuilt
    assert built.args == [1]
