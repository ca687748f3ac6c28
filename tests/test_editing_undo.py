"""Undo floor and grouped steps on a real-size label map (512 x 512 x 100 uint8).

The real STS_001 tumour mask is placed in a CT-sized grid, so every edit has the size and the
compressibility of a real one; the tools are the product's own (grow, median, islands, fill).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.segmentation import Segment, Segmentation
from medseg_gui.editing.editor import SegmentEditor
from medseg_gui.editing.history import MIN_STEPS, History
from medseg_gui.editing.journal import Journal, recover
from medseg_gui.editing.morphology import grow_shrink, keep_largest_island, median_smooth
from medseg_gui.io.imagefile import read_image

SHAPE = (100, 512, 512)


@lru_cache(maxsize=1)
def _tumour(root: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    mask = read_image(root / "ibsi_sts/nifti/STS_001/CT_mask.nii.gz")
    return mask.array.astype(np.uint8), mask.geometry.spacing


@pytest.fixture
def seg(shared_data: Path) -> Segmentation:
    """The real tumour (label 1) in the middle of a 512 x 512 x 100 map, plus a speck of it
    far away (an island for "keep largest") and an empty label 2."""
    tumour, spacing = _tumour(shared_data)
    lm = np.zeros(SHAPE, np.uint8)
    k, j, i = ((s - t) // 2 for s, t in zip(SHAPE, tumour.shape, strict=True))
    lm[k:k + tumour.shape[0], j:j + tumour.shape[1], i:i + tumour.shape[2]] = tumour
    lm[5:8, 20:26, 20:26] = 1
    return Segmentation(lm, Geometry(SHAPE, spacing), [Segment(1, "Tumour"), Segment(2, "Node")])


def test_large_edits_past_the_cap_keep_the_floor_of_steps(seg: Segmentation) -> None:
    editor = SegmentEditor(seg, history=History(max_bytes=1))  # every edit passes the cap
    states = [seg.labelmap.copy()]
    for _ in range(MIN_STEPS + 2):  # each grows the tumour by 3 mm: ~10^5 voxels a step
        assert editor.apply(grow_shrink(seg, 1, 3.0)) is not None
        states.append(seg.labelmap.copy())
    history = editor.history
    assert len(history) == MIN_STEPS and history.evicted == 2
    assert history.nbytes > history.max_bytes  # the floor, not the cap, decides here
    for state in reversed(states[2:-1]):
        assert editor.undo() is not None
        np.testing.assert_array_equal(seg.labelmap, state)
    assert editor.undo() is None  # the two oldest steps are gone, as the cap asks
    np.testing.assert_array_equal(seg.labelmap, states[2])
    for state in states[3:]:
        assert editor.redo() is not None
        np.testing.assert_array_equal(seg.labelmap, state)


def test_cap_still_applies_beyond_the_floor(seg: Segmentation) -> None:
    edits = []
    for _ in range(MIN_STEPS + 3):
        edit = SegmentEditor(seg).apply(grow_shrink(seg, 1, 2.0))
        assert edit is not None
        edits.append(edit)
    cap = sum(e.nbytes for e in edits[-(MIN_STEPS + 1):])
    history = History(max_bytes=cap)
    for e in edits:
        history.push(e)
    assert len(history) == MIN_STEPS + 1 and history.nbytes <= cap and history.evicted == 2


def test_group_is_one_step_and_undoes_and_redoes_exactly(seg: Segmentation) -> None:
    editor = SegmentEditor(seg)
    editor.apply(grow_shrink(seg, 1, 2.0))
    before = seg.labelmap.copy()
    steps = len(editor.history)
    with editor.group("Smooth + keep largest"):
        smoothed = editor.apply(median_smooth(seg, 1, 3.0))
        largest = editor.apply(keep_largest_island(seg, 1))
        assert smoothed is not None and largest is not None
        assert len(editor.history) == steps  # not a step until the group ends
    after = seg.labelmap.copy()
    assert not (after[5:8, 20:26, 20:26] == 1).any()  # the speck is gone
    assert len(editor.history) == steps + 1
    assert editor.history.undo_name() == "Smooth + keep largest"
    merged = editor.undo()
    assert merged is not None and merged.n_changed == np.count_nonzero(before != after)
    np.testing.assert_array_equal(seg.labelmap, before)
    assert editor.redo() is merged
    np.testing.assert_array_equal(seg.labelmap, after)
    editor.undo()
    editor.undo()
    assert not editor.history.can_undo()


def test_nested_groups_merge_into_the_outer_one_with_the_table(seg: Segmentation) -> None:
    editor = SegmentEditor(seg)
    before, table = seg.labelmap.copy(), list(seg.segments)
    with editor.group("Outline node"):
        row = editor.add_segment("Node 2")
        with editor.group("inner"):
            editor.apply(grow_shrink(seg, 1, -2.0))
            editor.apply(grow_shrink(seg, 1, 4.0))
    assert len(editor.history) == 1 and editor.history.undo_name() == "Outline node"
    after, table_after = seg.labelmap.copy(), list(seg.segments)
    assert seg.segment(row.label).name == "Node 2"
    editor.undo()
    np.testing.assert_array_equal(seg.labelmap, before)
    assert seg.segments == table
    editor.redo()
    np.testing.assert_array_equal(seg.labelmap, after)
    assert seg.segments == table_after


def test_an_exception_in_a_group_records_what_was_done(seg: Segmentation) -> None:
    editor = SegmentEditor(seg)
    before = seg.labelmap.copy()
    with pytest.raises(ZeroDivisionError), editor.group("Two steps"):
        editor.apply(grow_shrink(seg, 1, 3.0))
        _ = 1 / 0
    grown = seg.labelmap.copy()
    assert not np.array_equal(grown, before)
    assert len(editor.history) == 1 and editor.history.undo_name() == "Two steps"
    assert not editor.history.grouping
    editor.undo()
    np.testing.assert_array_equal(seg.labelmap, before)


def test_a_group_that_changes_nothing_keeps_the_redo_step(seg: Segmentation) -> None:
    editor = SegmentEditor(seg)
    editor.apply(grow_shrink(seg, 1, 2.0))
    editor.undo()
    with editor.group("Nothing"):
        assert editor.apply(grow_shrink(seg, 2, 2.0)) is None  # label 2 is empty
    assert editor.history.can_redo() and not editor.history.can_undo()


def test_undo_inside_a_group_is_refused(seg: Segmentation) -> None:
    editor = SegmentEditor(seg)
    editor.apply(grow_shrink(seg, 1, 2.0))
    with editor.group("g"):
        editor.apply(grow_shrink(seg, 1, 2.0))
        with pytest.raises(RuntimeError, match="undo group"):
            editor.undo()
    assert len(editor.history) == 2


def test_journal_replays_a_group_and_its_undo(seg: Segmentation, tmp_path: Path) -> None:
    base = seg.labelmap.copy()
    journal = Journal(tmp_path / "j.msj", {"shape": list(SHAPE), "dtype": "uint8"}, base)
    editor = SegmentEditor(seg, journal=journal)
    with editor.group("Grow twice"):
        editor.apply(grow_shrink(seg, 1, 2.0))
        editor.apply(grow_shrink(seg, 1, 2.0))
    grown = seg.labelmap.copy()
    journal.flush()
    np.testing.assert_array_equal(recover(tmp_path / "j.msj").labelmap, grown)
    editor.undo()
    journal.flush()
    np.testing.assert_array_equal(recover(tmp_path / "j.msj").labelmap, base)
    editor.close()


def _paint(editor: SegmentEditor, at: tuple[float, float, float]) -> None:
    from medseg_gui.editing.brush import BrushSettings

    editor.begin_stroke(at, settings=BrushSettings(12.0))
    editor.continue_stroke((at[0] + 10, at[1] + 4, at[2]))


def test_a_segment_added_to_paint_is_one_step_with_its_first_stroke(seg: Segmentation,
                                                                     tmp_path: Path) -> None:
    base, table = seg.labelmap.copy(), list(seg.segments)
    journal = Journal(tmp_path / "j.msj", {"shape": list(SHAPE), "dtype": "uint8"}, base)
    editor = SegmentEditor(seg, journal=journal)
    row = editor.add_segment("Lymph node", with_first_stroke=True)
    assert editor.history.undo_name() == "Add segment" and not editor.history.can_redo()
    _paint(editor, (100.0, 100.0, 50.0))
    step = editor.end_stroke()
    assert step is not None and step.name == "Add segment + Paint" and len(editor.history) == 1
    painted = seg.labelmap.copy()
    assert (painted == row.label).sum() > 100
    editor.undo()  # one Ctrl+Z: neither the segment nor its paint is left
    np.testing.assert_array_equal(seg.labelmap, base)
    assert seg.segments == table
    editor.redo()
    np.testing.assert_array_equal(seg.labelmap, painted)
    assert seg.segments[-1].name == "Lymph node"
    journal.flush()  # the journal holds the parts; replayed they give the same map
    np.testing.assert_array_equal(recover(tmp_path / "j.msj").labelmap, painted)
    _paint(editor, (300.0, 300.0, 50.0))  # the second stroke is a step of its own
    assert editor.end_stroke() is not None and len(editor.history) == 2
    editor.close()


def test_another_edit_or_undo_leaves_the_added_segment_its_own_step(seg: Segmentation) -> None:
    editor = SegmentEditor(seg)
    editor.add_segment("Node 2", with_first_stroke=True)
    editor.apply(grow_shrink(seg, 1, 2.0))  # not a stroke: the addition stays apart
    assert len(editor.history) == 2 and editor.history.undo_name() == "Grow"
    editor.undo()
    editor.undo()
    assert [s.name for s in seg.segments] == ["Tumour", "Node"]
    editor.add_segment("Node 3", with_first_stroke=True)
    assert editor.undo() is not None and [s.name for s in seg.segments] == ["Tumour", "Node"]
    assert not editor.history.grouping  # undo closed the waiting group first
    _paint(editor, (100.0, 100.0, 50.0))  # a stroke after that is a plain step
    assert editor.end_stroke() is not None and editor.history.undo_name() == "Paint"


def test_history_open_and_close_group() -> None:
    history = History()
    assert history.open_group("a") and not history.open_group("b")  # the second joins
    seg = Segmentation(np.zeros((2, 2, 2), np.uint8), Geometry((2, 2, 2)))
    assert history.close_group(seg) is None and not history.grouping  # nothing was done
