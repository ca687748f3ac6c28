"""The editing tools' pointer logic without Qt, on a real CT and its sarcoma mask (STS_008).

The slice views only translate Qt events into :class:`PointerEvent` values; everything these
tests check (what a press, drag and release of each tool does, locks, busy tools, gestures kept
in their view, tools registered beside the built-in ones) runs with no widget and no Qt.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medseg_gui.core.progress import no_progress
from medseg_gui.core.segmentation import Segment, Segmentation
from medseg_gui.editing.base import ViewAxis
from medseg_gui.editing.brush import BrushShape
from medseg_gui.editing.editor import SegmentEditor
from medseg_gui.editing.regions import ScissorsOp
from medseg_gui.editing.tools import IGNORED, Button, Modifier, PointerEvent, Reply, Tool, ToolBox
from medseg_gui.io.imagefile import read_image

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def box(shared_data: Path) -> ToolBox:
    case = shared_data / "ibsi_sts" / "nifti" / "STS_008"
    ct = read_image(case / "CT_image.nii.gz")
    mask = read_image(case / "CT_mask.nii.gz")
    seg = Segmentation((mask.array != 0).astype(np.uint8), ct.geometry,
                       [Segment(1, "GTV"), Segment(2, "Other", color=(0, 200, 0))])
    toolbox = ToolBox()
    toolbox.editor = SegmentEditor(seg, ct.array)
    return toolbox


def _centre(seg: Segmentation) -> tuple[float, float, float]:
    """(i, j, k) of the tumour's middle voxel."""
    k, j, i = np.argwhere(seg.labelmap == 1).mean(axis=0).round()
    return (float(i), float(j), float(k))


def _at(ijk: tuple[float, float, float] | None, button: Button = Button.LEFT,
        view: str = "axial", **kw: object) -> PointerEvent:
    return PointerEvent(view, ViewAxis.AXIAL, ijk, button, **kw)  # type: ignore[arg-type]


def _editor(box: ToolBox) -> SegmentEditor:
    assert box.editor is not None
    return box.editor


def test_the_tools_import_and_run_with_qt_unavailable() -> None:
    """In a process where importing PySide6 fails, a paint stroke still runs."""
    code = (
        "import sys; sys.modules['PySide6'] = None\n"
        "import numpy as np\n"
        "from medseg_gui.core.geometry import Geometry\n"
        "from medseg_gui.core.segmentation import Segment, Segmentation\n"
        "from medseg_gui.editing.base import ViewAxis\n"
        "from medseg_gui.editing.editor import SegmentEditor\n"
        "from medseg_gui.editing.tools import Button, PointerEvent, ToolBox\n"
        "seg = Segmentation(np.zeros((5, 40, 40), np.uint8), Geometry((5, 40, 40)),"
        " [Segment(1, 'a')])\n"
        "box = ToolBox(editor=SegmentEditor(seg), active='paint')\n"
        "e = PointerEvent('v', ViewAxis.AXIAL, (20.0, 20.0, 2.0), Button.LEFT)\n"
        "box.press(e); print(box.release(e).edit is not None, int(seg.labelmap.sum()) > 0)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True", "True"]


def test_a_paint_stroke_is_one_undo_step_in_the_view_plane(box: ToolBox) -> None:
    editor = _editor(box)
    seg = editor.segmentation
    before = seg.labelmap.copy()
    editor.active_label = 2
    box.active = Tool.PAINT
    i, j, k = _centre(seg)
    started = box.press(_at((i - 30, j, k)))
    assert started.redraw and started.began  # the host redraws and follows the gesture
    for step in range(1, 7):
        assert box.move(_at((i - 30 + 5 * step, j, k))).handled
    reply = box.release(_at((i, j, k)))
    assert reply.edit is not None and len(editor.history) == 1
    changed = np.argwhere(seg.labelmap != before)
    assert len(changed) > 50 and set(changed[:, 0]) == {int(k)}  # a disc: one axial slice
    assert (seg.labelmap[seg.labelmap != before] == 2).all()
    editor.undo()
    np.testing.assert_array_equal(seg.labelmap, before)


def test_the_eraser_removes_the_active_segment_under_it(box: ToolBox) -> None:
    editor = _editor(box)
    seg = editor.segmentation
    box.active = Tool.ERASE
    box.brush = dataclasses.replace(box.brush, diameter_mm=20.0, shape=BrushShape.SPHERE)
    n = int((seg.labelmap == 1).sum())
    box.press(_at(_centre(seg)))
    assert box.release(_at(_centre(seg))).edit is not None
    assert 0 < int((seg.labelmap == 1).sum()) < n


def test_locked_segments_refuse_every_edit_tool(box: ToolBox) -> None:
    seg = _editor(box).segmentation
    before = seg.labelmap.copy()
    box.locked.add(1)
    for tool in (Tool.PAINT, Tool.ERASE, Tool.FILL, Tool.SCISSORS):
        box.active = tool
        reply = box.press(_at(_centre(seg)))
        assert reply.handled and "locked" in reply.message and reply.job is None
        box.release(_at(_centre(seg)))
    np.testing.assert_array_equal(seg.labelmap, before)
    assert box.constraint().locked == frozenset({1})  # painting another segment skips it


def test_navigate_other_buttons_and_points_off_the_image(box: ToolBox) -> None:
    seg = _editor(box).segmentation
    assert box.press(_at(_centre(seg))) == IGNORED  # navigate: the view moves the crosshair
    box.active = Tool.PAINT
    assert box.press(_at(_centre(seg), Button.RIGHT)) == IGNORED  # window/level drag
    assert box.press(_at(None)) == Reply(True)  # off the image: taken, nothing begun
    assert not _editor(box).stroking


def test_fill_returns_a_job_and_waits_while_one_runs(box: ToolBox) -> None:
    editor = _editor(box)
    seg = editor.segmentation
    box.active = Tool.FILL
    editor.active_label = 2
    reply = box.press(_at(_centre(seg)))
    assert reply.job is not None and reply.change is None
    change = reply.job(no_progress)  # what the GUI runs on a worker thread
    assert editor.apply(change) is not None and (seg.labelmap == 2).sum() > 100
    box.job_running = True
    refused = box.press(_at(_centre(seg)))
    assert refused.handled and refused.job is None and "wait" in refused.message


def test_scissors_cut_the_lasso_through_one_slice(box: ToolBox) -> None:
    editor = _editor(box)
    seg = editor.segmentation
    box.active = Tool.SCISSORS
    box.tools[Tool.SCISSORS].op = ScissorsOp.ERASE_INSIDE  # type: ignore[attr-defined]
    i, j, k = _centre(seg)
    square = [(i - 40, j - 40, k), (i + 40, j - 40, k), (i + 40, j + 40, k), (i - 40, j + 40, k)]
    assert box.press(_at(square[0])).began
    for p in square[1:]:
        assert box.move(_at(p)).redraw
    assert not box.move(_at(square[1], view="coronal")).handled  # the lasso stays in its view
    reply = box.release(_at(square[-1]))
    assert reply.change is not None
    before = seg.labelmap.copy()
    editor.apply(reply.change)
    assert not (seg.labelmap[int(k)] == 1).any()  # the tumour's middle slice is cut away
    untouched = [n for n in range(seg.labelmap.shape[0]) if n != int(k)]
    np.testing.assert_array_equal(seg.labelmap[untouched], before[untouched])


def test_a_gesture_stays_in_the_view_it_began_in(box: ToolBox) -> None:
    seg = _editor(box).segmentation
    box.active = Tool.PAINT
    box.press(_at(_centre(seg)))
    assert box.move(_at(_centre(seg), view="sagittal")) == IGNORED
    assert box.release(_at(_centre(seg), view="sagittal")) == IGNORED
    assert box.cancel() and not _editor(box).stroking  # Escape drops the stroke


class Ruler:
    """A tool registered beside the built-in ones: it only records what it is given."""

    busy = False

    def __init__(self) -> None:
        self.seen: list[tuple[str, PointerEvent]] = []

    def press(self, event: PointerEvent) -> Reply:
        self.seen.append(("press", event))
        return Reply(True)

    def move(self, event: PointerEvent) -> Reply:
        self.seen.append(("move", event))
        return Reply(True, redraw=True)

    def release(self, event: PointerEvent) -> Reply:
        self.seen.append(("release", event))
        return Reply(True, message="12.5 mm")

    def cancel(self) -> bool:
        self.seen.append(("cancel", _at(None)))
        return True


def test_other_tools_plug_in_beside_the_built_in_ones(box: ToolBox) -> None:
    ruler = Ruler()
    box.register("ruler", ruler)
    box.active = "ruler"
    start = _at((1.0, 2.0, 3.0), modifiers=Modifier.SHIFT, world=(4.0, 5.0, 6.0),
                screen=(10.0, 20.0))
    box.press(start)
    box.move(dataclasses.replace(start, button=Button.LEFT, screen=(30.0, 20.0)))
    assert box.release(start).message == "12.5 mm"
    assert [what for what, _ in ruler.seen] == ["press", "move", "release"]
    assert ruler.seen[0][1].modifiers is Modifier.SHIFT and ruler.seen[0][1].world == (4, 5, 6)
    assert box.cancel() and ruler.seen[-1][0] == "cancel"
    ruler.busy = True  # a busy tool makes the edit tools wait
    box.active = Tool.PAINT
    assert "wait" in box.press(_at(_centre(_editor(box).segmentation))).message
