"""The Ruler tool and editable RECIST axes with real mouse and key events on the demo CT (a real
X server): lengths in mm, one named undo step each, the study's file, reopening, the statistics
table, Reset axes and the exported report; and the review status in the Segments list."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest

from medseg_gui.core.annotations import annotations_file, load_annotations
from medseg_gui.core.review import Review, ReviewStatus
from medseg_gui.core.segmentation import Segmentation
from medseg_gui.io.masks import load_mask
from medseg_gui.rendering.slicing import Orientation
from medseg_gui.resources import DEMO_STUDY
from medseg_gui.ui.editing_tools import Tool
from tests.gui.editing_helpers import centre, demo_volume, drag, shown_window
from tests.gui.test_editing import stroke_points, win  # noqa: F401  (the fixture)
from tests.gui.test_export_dialog import _export

pytestmark = pytest.mark.gui
CTRL = Qt.KeyboardModifier.ControlModifier


def _mm_per_px(widget) -> float:  # type: ignore[no-untyped-def]
    view = widget.view
    return float(2 * view.renderer.GetActiveCamera().GetParallelScale()
                 / view.renderer.GetSize()[1])


def _screen(widget, world) -> QPoint:  # type: ignore[no-untyped-def]
    """The widget position of an LPS point on the view's slice."""
    x, y = widget.view.world_to_display(world)
    return QPoint(round(x), round(widget.height() - y - 1))


def _demo_with_mask(qtbot, window) -> Segmentation:  # type: ignore[no-untyped-def]
    """The demo CT with its reference contour, measured; the axial view on its RECIST slice."""
    seg = load_mask(DEMO_STUDY.parent / "mask" / "RS.dcm", demo_volume())
    with qtbot.waitSignal(window.segment_stats.measured, timeout=20_000):
        window.set_segmentation(seg, force=True)
    window.segment_stats.go_to_recist(0)
    window.render_all()
    return seg


def test_ruler_in_mm_with_undo_delete_and_reopen(win, qtbot):  # type: ignore[no-untyped-def]  # noqa: F811
    axial, coronal = win.views[Orientation.AXIAL], win.views[Orientation.CORONAL]
    measure = win.editing.measure
    win.activateWindow()
    qtbot.waitActive(win)
    axial.setFocus()
    qtbot.waitUntil(axial.hasFocus)
    QTest.keyClick(axial, Qt.Key.Key_M)  # the Ruler tool's shortcut
    qtbot.waitUntil(lambda: win.editing.tool is Tool.RULER, timeout=2000)
    c = centre(axial)
    a, b = c + QPoint(-60, 30), c + QPoint(40, -20)
    drag(axial, [a, c, b])
    (ruler,) = measure.notes.rulers
    assert np.allclose(ruler.start, axial.world_at(QPointF(a)), atol=1e-6)
    assert np.allclose(ruler.end, axial.world_at(QPointF(b)), atol=1e-6)
    # Its length is the on-screen distance times the view's mm per pixel.
    assert ruler.length_mm == pytest.approx(np.hypot(100, 50) * _mm_per_px(axial), rel=1e-3)
    assert measure.lines[Orientation.AXIAL].shown == [f"{ruler.length_mm:.1f} mm"]
    assert measure.lines[Orientation.CORONAL].shown == []  # only on its own slice
    assert win.edit_actions.undo.text() == "&Undo Add ruler"
    # On disk at once: a crash now loses nothing.
    assert load_annotations(annotations_file(win.volume)).rulers == (ruler,)
    # Ctrl+Z / Ctrl+Y: one step each.
    QTest.keyClick(axial, Qt.Key.Key_Z, CTRL)
    assert measure.notes.rulers == () and measure.lines[Orientation.AXIAL].shown == []
    assert load_annotations(annotations_file(win.volume)).rulers == ()
    QTest.keyClick(axial, Qt.Key.Key_Y, CTRL)
    assert measure.notes.rulers == (ruler,)
    # Drag its end point: "Move ruler"; the other end stays.
    b2 = b + QPoint(30, 40)
    drag(axial, [b + QPoint(2, 1), b + QPoint(15, 20), b2])
    (moved,) = measure.notes.rulers
    assert moved.id == ruler.id and moved.start == ruler.start
    assert np.allclose(moved.end, axial.world_at(QPointF(b2)), atol=1e-6)
    assert win.edit_actions.undo.text() == "&Undo Move ruler"
    # A drag in another view draws a ruler there; a click on a line selects it, Delete deletes.
    drag(coronal, [centre(coronal), centre(coronal) + QPoint(0, 50)])
    assert len(measure.notes.rulers) == 2
    assert len(measure.lines[Orientation.CORONAL].shown) == 1
    middle = (a + b2) / 2
    drag(axial, [middle, middle])
    assert measure.gesture.selected is not None and measure.gesture.selected.ruler == ruler.id
    QTest.keyClick(axial, Qt.Key.Key_Delete)
    assert [r.id for r in measure.notes.rulers] != [ruler.id] and len(measure.notes.rulers) == 1
    assert win.edit_actions.undo.text() == "&Undo Delete ruler"
    QTest.keyClick(axial, Qt.Key.Key_Z, CTRL)
    assert len(measure.notes.rulers) == 2
    # The study opened again (another window, as after a restart) shows the same rulers.
    kept = measure.notes
    win.close()
    again = shown_window(qtbot, 1400, 900)
    again.set_volume(demo_volume())
    again.render_all()
    assert again.editing.measure.notes == kept
    assert len(again.editing.measure.lines[Orientation.AXIAL].shown) == 1


def test_recist_axis_dragged_replaces_the_computed_one_until_reset(win, qtbot, tmp_path):  # type: ignore[no-untyped-def]  # noqa: F811
    _demo_with_mask(qtbot, win)
    stats, measure = win.segment_stats, win.editing.measure
    axial = win.views[Orientation.AXIAL]
    computed = stats.rows[0].measured.recist
    assert computed is not None and computed.short is not None
    win.editing.set_tool("ruler")
    end = _screen(axial, computed.long.end)
    target = end + QPoint(25, 10)
    drag(axial, [end, end + QPoint(10, 5), target])
    edit = measure.notes.axis(1, "long")  # type: ignore[arg-type]
    assert edit is not None and np.allclose(edit.start, computed.long.start)
    assert np.allclose(edit.end, axial.world_at(QPointF(target)), atol=1e-6)
    assert win.edit_actions.undo.text() == "&Undo Edit RECIST long axis"
    QTest.keyClick(axial, Qt.Key.Key_Z, CTRL)  # one step: the computed axis is back
    assert measure.notes.axes == ()
    assert measure.lines[Orientation.AXIAL].shown[0] == f"{computed.long.length_mm:.1f} mm"
    QTest.keyClick(axial, Qt.Key.Key_Y, CTRL)
    assert measure.notes.axis(1, "long") == edit  # type: ignore[arg-type]
    # The table shows the edited length, marked; the short axis is still the computed one.
    cells = [stats.table.item(0, c).text() for c in range(stats.table.columnCount())]
    assert cells[4] == f"{edit.length_mm:.2f} \u270e" and cells[11] == "long"
    assert cells[5] == f"{computed.short.length_mm:.2f}"
    assert "computed" in stats.table.item(0, 4).toolTip()
    assert measure.lines[Orientation.AXIAL].shown[0] == f"{edit.length_mm:.1f} mm (edited)"
    # The report exported from the window carries the edited axis.
    (json_path, _) = _export(qtbot, win, "report", tmp_path / "r")
    doc = json.loads(json_path.read_text())
    assert doc["segments"][0]["recist_long_edited"] is True
    assert doc["segments"][0]["recist_long_mm"] == round(edit.length_mm, 2)
    # Reset axes puts the computed one back (one step, undoable).
    stats.table.selectRow(0)
    assert stats.reset_button.isEnabled()
    stats.reset_button.click()
    assert measure.notes.axes == () and stats.table.item(0, 4).text() == \
        f"{computed.long.length_mm:.2f}"
    assert win.edit_actions.undo.text() == "&Undo Reset RECIST axes"
    win.edit_actions.undo.trigger()
    assert measure.notes.axis(1, "long") == edit  # type: ignore[arg-type]
    # Delete on the selected edited axis resets it too; a computed axis cannot be deleted.
    end = _screen(axial, edit.end)
    drag(axial, [end, end])  # select it without moving
    QTest.keyClick(axial, Qt.Key.Key_Delete)
    assert measure.notes.axes == ()
    QTest.keyClick(axial, Qt.Key.Key_Delete)
    assert measure.notes.axes == () and "cannot be deleted" in win.statusBar().currentMessage()


def test_review_status_in_the_segments_list(win, qtbot):  # type: ignore[no-untyped-def]  # noqa: F811
    seg = _demo_with_mask(qtbot, win)
    panel = win.segment_panel
    box = panel.status_box(1)
    assert box.currentIndex() == -1 and box.placeholderText() == "not set"
    # A draft (as the AI leaves it) becomes in progress when painted, in the same undo step.
    draft = Review(ReviewStatus.DRAFT, "reader-one", "2025-01-31T14:05:09Z")
    seg.segments[0] = dataclasses.replace(seg.segments[0], review=draft)
    panel.refresh()
    assert panel.status_box(1).currentText() == "draft"
    axial = win.views[Orientation.AXIAL]
    win.editing.set_tool("paint")
    drag(axial, stroke_points(axial, dx=30, steps=3))
    assert panel.status_box(1).currentText() == "in progress"
    assert win.edit_actions.undo.text() == "&Undo Paint"
    # The row's Status box sets it: one step, named, with who and when.
    box = panel.status_box(1)
    index = box.findData(ReviewStatus.COMPLETED)
    box.setCurrentIndex(index)
    box.activated.emit(index)
    qtbot.waitUntil(lambda: win.segmentation.segments[0].review.status
                    is ReviewStatus.COMPLETED, timeout=5000)
    review = win.segmentation.segments[0].review
    assert panel.status_box(1).currentText() == "completed"  # the rebuilt row shows it
    assert review.status is ReviewStatus.COMPLETED and review.by and review.at
    assert review.by in panel.status_box(1).toolTip()
    assert win.edit_actions.undo.text() == "&Undo Status: completed"
    QTest.keyClick(axial, Qt.Key.Key_Z, CTRL)
    assert panel.status_box(1).currentData() == ReviewStatus.IN_PROGRESS
