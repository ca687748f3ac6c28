"""The Segment statistics dock on the demo study with its real mask, and the RECIST lines."""

from __future__ import annotations

import csv
import io

import pytest
from PySide6.QtGui import QGuiApplication

from medseg_gui.core.measurements import measure_all
from medseg_gui.io.masks import load_mask
from medseg_gui.rendering.slicing import Orientation
from medseg_gui.resources import DEMO_STUDY
from tests.gui.editing_helpers import demo_volume, drag
from tests.gui.test_editing import stroke_points, win  # noqa: F401  (the fixture)

pytestmark = pytest.mark.gui


def test_table_matches_the_measurements_and_copies_as_csv(win, qtbot):  # type: ignore[no-untyped-def]  # noqa: F811
    stats = win.segment_stats
    seg = load_mask(DEMO_STUDY.parent / "mask" / "RS.dcm", demo_volume())
    with qtbot.waitSignal(stats.measured, timeout=10000):
        win.set_segmentation(seg, force=True)
    (expected,) = measure_all(seg, demo_volume())
    assert expected.recist is not None and expected.recist.short is not None
    cells = [stats.table.item(0, c).text() for c in range(stats.table.columnCount())]
    assert cells[:9] == [
        seg.segments[0].name, f"{expected.volume_ml:.2f}", str(expected.voxels),
        f"{expected.longest_diameter_mm:.2f}", f"{expected.recist.long.length_mm:.2f}",
        f"{expected.recist.short.length_mm:.2f}", f"{expected.mean:.2f}",
        f"{expected.minimum:.2f}", f"{expected.maximum:.2f}"]
    assert cells[9] == seg.segments[0].model and cells[10] == "+0 / -0 voxels"
    assert cells[11] == ""  # no axis edited

    text = stats.copy_csv()
    assert QGuiApplication.clipboard().text() == text
    (row,) = list(csv.DictReader(io.StringIO(text)))
    assert float(row["RECIST long (mm)"]) == pytest.approx(expected.recist.long.length_mm,
                                                           abs=0.005)
    assert int(row["Voxels"]) == expected.voxels

    # The axes show on the axial view at the RECIST slice, and only while switched on.
    axial = win.views[Orientation.AXIAL]
    lines = win.editing.measure.lines
    win.render_all()
    stats.go_to_recist(0)
    assert axial.view.layout.slice_index(axial.view.layout.world_to_view(
        expected.recist.long.start)[2]) == axial.view.slice_index
    assert lines[Orientation.AXIAL].shown == [f"{expected.recist.long.length_mm:.1f} mm",
                                              f"{expected.recist.short.length_mm:.1f} mm"]
    assert lines[Orientation.CORONAL].shown == []
    stats.show_recist.setChecked(False)
    assert lines[Orientation.AXIAL].shown == []
    stats.show_recist.setChecked(True)
    assert len(lines[Orientation.AXIAL].shown) == 2

    # An edit is measured again once the strokes stop, with its correction effort.
    win.editing.set_tool("paint")
    with qtbot.waitSignal(stats.measured, timeout=10000):
        drag(axial, stroke_points(axial, dx=80, steps=4))
    (after,) = stats.rows
    assert after.measured.voxels == int((win.segmentation.labelmap == 1).sum()) > expected.voxels
    assert after.effort is not None and after.effort.voxels_added == (
        after.measured.voxels - expected.voxels)
    assert stats.table.item(0, 2).text() == str(after.measured.voxels)
