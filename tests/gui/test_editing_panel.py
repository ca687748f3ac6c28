"""The segment list (add, rename, recolour, delete, visibility, volumes) and fill/scissors."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from medseg_gui.editing import BrushShape, MaskMode, PaintConstraint
from medseg_gui.rendering.slicing import Orientation
from tests.gui.editing_helpers import centre, demo_volume, drag, label_at
from tests.gui.test_editing import stroke_points, win  # noqa: F401  (the fixture)

pytestmark = pytest.mark.gui


def test_add_rename_recolour_delete_through_the_panel(win, qtbot):  # type: ignore[no-untyped-def]  # noqa: F811
    panel = win.segment_panel
    assert win.segmentation is None
    first = panel.add_segment("Tumour")
    assert first == 1 and win.segmentation is not None  # an empty map on the CT's grid
    assert win.segmentation.segment(1).name == "Tumour"
    assert win.segmentation.geometry.same_grid(demo_volume().geometry)
    second = panel.add_segment("Oedema")
    assert panel.labels() == [1, 2] and win.editing.editor.active_label == 2
    # The active segment is the selected, bold row with a pencil.
    row = panel.table.currentRow()
    assert panel.table.item(row, 2).text() == "\u270e Oedema" and panel.table.item(
        row, 2).font().bold()
    # Renaming by editing the cell is one undoable step.
    panel.table.item(0, 2).setText("GTV")
    assert win.segmentation.segment(1).name == "GTV"
    assert win.edit_actions.undo.text() == "&Undo Rename segment"
    win.editing.undo()
    assert win.segmentation.segment(1).name == "Tumour"
    panel.recolor(2, (10, 200, 30))
    assert win.segmentation.segment(2).color == (10, 200, 30)
    # Paint with segment 2, then delete it: its voxels go, and one undo brings both back.
    axial = win.views[Orientation.AXIAL]
    win.editing.set_tool("paint")
    drag(axial, stroke_points(axial, dx=30, steps=3))
    assert label_at(win, axial, centre(axial)) == second
    panel.delete(second)
    assert panel.labels() == [1] and not win.segmentation.labelmap.any()
    win.editing.undo()
    assert panel.labels() == [1, 2] and label_at(win, axial, centre(axial)) == second
    # Clicking a row makes it the active (painting) segment.
    panel.table.selectRow(0)
    assert win.editing.editor.active_label == 1


def test_volumes_follow_edits(win, qtbot):  # type: ignore[no-untyped-def]  # noqa: F811
    panel = win.segment_panel
    axial = win.views[Orientation.AXIAL]
    win.editing.set_tool("paint")
    win.editing.set_brush(diameter_mm=10.0, shape=BrushShape.SPHERE)
    drag(axial, stroke_points(axial, dx=60, steps=6))
    seg = win.segmentation

    def shown() -> float:
        return float(panel.table.item(0, 3).text())

    first = seg.volumes_ml()[1]
    qtbot.waitUntil(lambda: panel.table.item(0, 3).text() not in ("", "...")
                    and abs(shown() - first) < 0.01, timeout=3000)
    drag(axial, stroke_points(axial, dy=-40, dx=60, steps=6))  # a second, separate stroke
    assert seg.volumes_ml()[1] > first
    qtbot.waitUntil(lambda: abs(shown() - seg.volumes_ml()[1]) < 0.01, timeout=3000)
    win.editing.undo()
    qtbot.waitUntil(lambda: abs(shown() - first) < 0.01, timeout=3000)
    win.editing.undo()  # the first stroke took the segment it created with it
    qtbot.waitUntil(lambda: panel.table.rowCount() == 0, timeout=3000)


def test_hidden_segment_disappears_from_the_overlay(win):  # type: ignore[no-untyped-def]  # noqa: F811
    axial = win.views[Orientation.AXIAL]
    win.editing.set_tool("paint")
    win.editing.set_brush(diameter_mm=15.0)
    drag(axial, [centre(axial)])
    p = centre(axial) + QPoint(8, 8)  # off the crosshair lines

    def redness() -> int:
        rgb = axial.capture()[p.y(), p.x()].astype(int)
        return int(rgb[0] - rgb[2])

    shown = redness()
    item = win.segment_panel.table.item(0, 0)
    item.setCheckState(Qt.CheckState.Unchecked)  # the visibility checkbox
    assert 1 in win.editing.hidden
    hidden = redness()
    assert shown > hidden + 30 and abs(hidden) < 15  # grey CT again
    win.segment_panel.set_visible(1, True)
    assert redness() == shown


def test_paint_only_inside_another_segment(win):  # type: ignore[no-untyped-def]  # noqa: F811
    axial = win.views[Orientation.AXIAL]
    win.editing.set_tool("paint")
    win.editing.set_brush(diameter_mm=10.0)
    drag(axial, [centre(axial)])
    first = win.segmentation.labelmap == 1
    win.segment_panel.add_segment()
    win.editing.set_brush(diameter_mm=30.0, constraint=PaintConstraint(
        mask_mode=MaskMode.INSIDE, mask_label=1))
    drag(axial, stroke_points(axial, dx=40, steps=4))
    second = win.segmentation.labelmap == 2
    assert second.any() and not (second & ~first).any()


def test_fill_and_scissors(win, qtbot):  # type: ignore[no-untyped-def]  # noqa: F811
    axial = win.views[Orientation.AXIAL]
    win.segment_panel.add_segment()
    win.editing.set_brush(shape=BrushShape.DISC)
    win.editing.set_tool("fill")
    c = centre(axial)
    drag(axial, [c])
    qtbot.waitUntil(lambda: win.segmentation.labelmap.any(), timeout=5000)
    filled = win.segmentation.labelmap == 1
    seed_hu = demo_volume().array[np.nonzero(filled)][0]
    assert filled.sum() > 50 and np.unique(np.nonzero(filled)[0]).size == 1  # one slice (disc)
    assert np.abs(demo_volume().array[filled] - seed_hu).max() <= 2 * 60
    assert win.edit_actions.undo.text() == "&Undo Fill"
    # Scissors: erase inside a lasso around the click point.
    win.editing.set_tool("scissors")
    square = [c + QPoint(-15, -15), c + QPoint(15, -15), c + QPoint(15, 15), c + QPoint(-15, 15),
              c + QPoint(-15, -14)]
    drag(axial, square)
    assert label_at(win, axial, c) == 0
    assert (win.segmentation.labelmap == 1).sum() < filled.sum()
    win.editing.undo()
    np.testing.assert_array_equal(win.segmentation.labelmap == 1, filled)
