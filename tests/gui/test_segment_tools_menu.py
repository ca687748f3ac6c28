"""The Segment menu tools and the correction-effort readout on the demo study (real X server)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QPoint

from medseg_gui.core.segmentation import Segmentation, SegmentSource
from medseg_gui.editing import BrushShape, ViewAxis
from medseg_gui.editing.base import Change
from medseg_gui.editing.interpolate import fill_between_slices
from medseg_gui.editing.morphology import (
    closing,
    grow_shrink,
    keep_largest_island,
    median_smooth,
    remove_small_islands,
    split_islands,
)
from medseg_gui.rendering.slicing import Orientation
from medseg_gui.resources import DEMO_RTSTRUCT
from tests.gui.editing_helpers import centre, demo_volume, drag, shown_window

pytestmark = pytest.mark.gui


def demo_segmentation() -> Segmentation:
    from medseg_gui.io.masks import load_mask

    return load_mask(DEMO_RTSTRUCT, demo_volume())


def with_islands(seg: Segmentation, label: int) -> None:
    """A 3x3x3 cube (about 28 mm^3) and a single voxel of ``label`` away from the tumour."""
    lm = seg.labelmap
    lm[1:4, 2:5, 2:5] = label
    lm[1, -3, -3] = label


def sparse_slices(seg: Segmentation, label: int) -> None:
    """Keep ``label`` on every third axial slice only (something to fill between)."""
    ks = np.unique(np.nonzero(seg.labelmap == label)[0])
    for k in ks:
        if (k - ks[0]) % 3 and k != ks[-1]:
            seg.labelmap[k][seg.labelmap[k] == label] = 0


@pytest.fixture
def win(qtbot) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    w = shown_window(qtbot)
    w.set_volume(demo_volume())
    w.render_all()
    yield w
    w.close()


Expected = Callable[[Segmentation, int, Any], Change]

CASES: list[tuple[str, float | None, Callable[[Segmentation, int], None], Expected]] = [
    ("fill", None, sparse_slices,
     lambda s, lab, w: fill_between_slices(s, lab, ViewAxis.AXIAL, image=w.editing.editor.image,
                                           constraint=w.editing.brush.constraint)),
    ("largest", None, with_islands, lambda s, lab, _w: keep_largest_island(s, lab)),
    ("small", 50.0, with_islands, lambda s, lab, _w: remove_small_islands(s, lab, 50.0)),
    ("split", None, with_islands, lambda s, lab, _w: split_islands(s, lab)),
    ("smooth", 3.0, with_islands, lambda s, lab, _w: median_smooth(s, lab, 3.0)),
    ("closing", 8.0, sparse_slices, lambda s, lab, _w: closing(s, lab, 8.0)),
    ("grow", 2.0, with_islands, lambda s, lab, _w: grow_shrink(s, lab, 2.0)),
    ("grow", -2.0, with_islands, lambda s, lab, _w: grow_shrink(s, lab, -2.0)),
]


@pytest.mark.parametrize(("key", "value", "prepare", "expected"), CASES,
                         ids=[f"{c[0]}{'' if c[1] is None else c[1]}" for c in CASES])
def test_tool_matches_the_function_and_undoes_exactly(win, qtbot, key, value, prepare,  # type: ignore[no-untyped-def]
                                                      expected):
    seg = demo_segmentation()
    label = seg.segments[0].label
    prepare(seg, label)
    assert win.set_segmentation(seg, force=True)
    editor = win.editing.editor
    assert editor is not None and editor.active_label == label
    tools = win.segment_tools
    assert tools.actions[key].isEnabled()
    before = seg.labelmap.copy()
    table_before = list(seg.segments)

    change = expected(Segmentation(before.copy(), seg.geometry, list(seg.segments)), label, win)
    assert change.region is not None and change.new is not None
    want = before.copy()
    want[change.region] = change.new
    assert not np.array_equal(want, before)  # the case really tests something

    with qtbot.waitSignal(tools.done, timeout=60000):
        assert tools.run(key, value)
        assert tools.busy and not tools.actions[key].isEnabled()
    assert not tools.busy and tools.actions[key].isEnabled()
    assert win.segmentation is seg
    np.testing.assert_array_equal(seg.labelmap, want)
    if change.segments is not None:
        assert [s.label for s in seg.segments] == [s.label for s in change.segments]

    assert win.editing.undo() is not None
    np.testing.assert_array_equal(seg.labelmap, before)
    assert list(seg.segments) == table_before


def test_smooth_and_keep_largest_is_one_undo_step(win, qtbot):  # type: ignore[no-untyped-def]
    seg = demo_segmentation()
    label = seg.segments[0].label
    with_islands(seg, label)
    assert win.set_segmentation(seg, force=True)
    before = seg.labelmap.copy()
    want = Segmentation(before.copy(), seg.geometry, list(seg.segments))
    median_smooth(want, label, 1.0).write(want)
    keep_largest_island(want, label).write(want)
    assert not np.array_equal(want.labelmap, before)
    steps = len(win.editing.editor.history)
    with qtbot.waitSignal(win.segment_tools.done, timeout=60000):
        assert win.segment_tools.run("cleanup", 1.0)
    np.testing.assert_array_equal(seg.labelmap, want.labelmap)
    assert len(win.editing.editor.history) == steps + 1
    assert win.edit_actions.undo.text() == "&Undo Smooth + keep largest"
    assert win.editing.undo() is not None
    np.testing.assert_array_equal(seg.labelmap, before)


def test_a_result_is_dropped_when_the_label_map_changed_meanwhile(win, qtbot):  # type: ignore[no-untyped-def]
    seg = demo_segmentation()
    label = seg.segments[0].label
    with_islands(seg, label)
    win.set_segmentation(seg, force=True)
    tools = win.segment_tools
    with qtbot.waitSignal(tools.done, timeout=60000):
        assert tools.run("grow", 2.0)
        assert not tools.run("largest")  # one at a time
        tools._generation += 1  # what a committed brush stroke does through editing.edited
    np.testing.assert_array_equal(seg.labelmap != 0, demo_islands_mask(label))


def demo_islands_mask(label: int) -> np.ndarray:
    seg = demo_segmentation()
    with_islands(seg, label)
    return np.asarray(seg.labelmap != 0)


def test_effort_readout_follows_paint_and_erase(win, qtbot):  # type: ignore[no-untyped-def]
    tools = win.segment_tools
    seg = demo_segmentation()
    with qtbot.waitSignal(tools.effortUpdated, timeout=10000) as first:
        win.set_segmentation(seg, force=True)
    # The demo's RTSTRUCT is a clinician's contour, not an AI draft: the readout says so.
    assert first.args == ["+0 / -0 voxels vs opened mask, Dice 1.00, 0 s editing"]
    assert tools.effort_label.text() == first.args[0]

    axial = win.views[Orientation.AXIAL]
    c = centre(axial)
    points = [c + QPoint(dx, 0) for dx in (-80, -40, 0, 40, 80)]
    win.editing.set_tool("paint")
    win.editing.set_brush(diameter_mm=15.0, shape=BrushShape.DISC)
    with qtbot.waitSignal(tools.effortUpdated, timeout=10000) as painted:
        drag(axial, points)
    assert painted.args[0] != first.args[0]
    assert painted.args[0].startswith("+") and not painted.args[0].startswith("+0 ")
    assert "Dice 1.00" not in painted.args[0]

    win.editing.set_tool("erase")
    with qtbot.waitSignal(tools.effortUpdated, timeout=10000) as erased:
        drag(axial, points)
    assert erased.args[0] != painted.args[0]
    assert erased.args[0].startswith("+0 / ")  # the painted voxels are gone again
    assert tools.effort_label.text() == erased.args[0]


def test_effort_readout_names_an_ai_draft(win, qtbot):  # type: ignore[no-untyped-def]
    seg = demo_segmentation()
    seg.segments = [dataclasses.replace(s, source=SegmentSource.AUTOMATIC) for s in seg.segments]
    with qtbot.waitSignal(win.segment_tools.effortUpdated, timeout=10000) as first:
        win.set_segmentation(seg, force=True)
    assert first.args == ["+0 / -0 voxels vs AI draft, Dice 1.00, 0 s editing"]


def test_segment_menu_lists_the_tools(win):  # type: ignore[no-untyped-def]
    menus = {a.text().replace("&", ""): a.menu() for a in win.menuBar().actions()}
    texts = [a.text() for a in menus["Segment"].actions()]
    assert texts == ["Fill between slices", "Keep largest island", "Remove small islands...",
                     "Split islands", "Smooth (median)...", "Smooth + keep largest...",
                     "Closing...", "Grow / shrink..."]
    assert not win.segment_tools.actions["fill"].isEnabled()  # no segmentation yet
