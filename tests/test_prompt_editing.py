"""Prompt results as edits: which part of a segment a prompt refines, the paint rules, one undo
step per prompt that restores the voxels exactly."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.segmentation import Segment, Segmentation
from medseg_gui.editing import SegmentEditor
from medseg_gui.editing.ai_prompt import PromptSession, find_object, prompt_change
from medseg_gui.editing.base import Change, Region
from medseg_gui.editing.constraints import Overwrite, PaintConstraint
from medseg_gui.inference.prompts import box, point

GEOM = Geometry((20, 40, 40), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0))


@dataclass
class Result:
    """A model's answer inside ``region``, as :func:`predict` returns it."""

    region: Region
    mask: np.ndarray
    covered: np.ndarray


def segmentation() -> Segmentation:
    seg = Segmentation.empty(GEOM, [Segment(1, "Lesion"), Segment(2, "Organ")])
    seg.labelmap[5:9, 5:12, 5:12] = 1  # part A of segment 1
    seg.labelmap[5:9, 28:34, 28:34] = 1  # part B of segment 1, far from A
    seg.labelmap[10:14, 10:20, 10:20] = 2  # another segment
    return seg


def world(k: float, j: float, i: float) -> np.ndarray:
    return GEOM.index_to_world([i, j, k])


def result_everywhere_in(region: Region, value: bool = True) -> Result:
    shape = tuple(s.stop - s.start for s in region)
    return Result(region, np.full(shape, value), np.ones(shape, bool))


def test_the_object_is_the_part_the_prompts_touch_or_come_near() -> None:
    seg = segmentation()
    a = find_object(seg.labelmap, 1, point(world(6, 8, 8)), GEOM)
    assert a is not None and a[6, 8, 8] and not a[6, 30, 30]
    near = find_object(seg.labelmap, 1, point(world(6, 8, 18)), GEOM)  # 6 mm beside A
    assert near is not None and near[6, 8, 8] and not near[6, 30, 30]
    assert find_object(seg.labelmap, 1, point(world(16, 20, 20)), GEOM) is None
    boxed = find_object(seg.labelmap, 1, box(world(6, 25, 25), world(6, 36, 36)), GEOM)
    assert boxed is not None and boxed[6, 30, 30] and not boxed[6, 8, 8]
    assert find_object(seg.labelmap, 3, point(world(6, 8, 8)), GEOM) is None


def test_a_prompt_never_paints_over_other_or_locked_segments_unless_allowed() -> None:
    seg = segmentation()
    region: Region = (slice(8, 16), slice(5, 25), slice(5, 25))
    res = result_everywhere_in(region)
    before = seg.labelmap.copy()
    obj = find_object(seg.labelmap, 1, point(world(6, 8, 8)), GEOM)
    protect = PaintConstraint(overwrite=Overwrite.NONE)
    change, _ = prompt_change(seg.labelmap, 1, res, obj, name="AI: positive point",
                              constraint=protect)
    assert change.region is not None and change.new is not None
    new = seg.labelmap.copy()
    new[change.region] = change.new
    assert np.array_equal(new == 2, before == 2)  # the other segment is untouched
    assert np.array_equal(new[5:9, 28:34, 28:34], before[5:9, 28:34, 28:34])  # part B stays
    assert (new[region] == 1).sum() > 0 and change.name == "AI: positive point"
    over, _ = prompt_change(seg.labelmap, 1, res, obj, name="x",
                            constraint=PaintConstraint(overwrite=Overwrite.ALL))
    assert over.new is not None and int((over.new == 2).sum()) == 0
    locked, _ = prompt_change(seg.labelmap, 1, res, obj, name="x",
                              constraint=PaintConstraint(locked=frozenset({2})))
    assert locked.new is not None and np.array_equal(locked.new == 2, before[region] == 2)
    frozen, _ = prompt_change(seg.labelmap, 1, res, obj, name="x",
                              constraint=PaintConstraint(locked=frozenset({1})))
    assert frozen.region is None


def test_the_object_shrinks_where_the_model_says_so_but_not_outside_the_crop() -> None:
    seg = segmentation()
    obj = find_object(seg.labelmap, 1, point(world(6, 8, 8)), GEOM)
    region: Region = (slice(0, 20), slice(0, 10), slice(0, 40))  # covers half of part A
    empty = result_everywhere_in(region, value=False)
    change, inside = prompt_change(seg.labelmap, 1, empty, obj, name="x")
    assert change.new is not None and not (change.new == 1).any() and not inside.any()
    new = seg.labelmap.copy()
    new[change.region] = change.new
    assert (new[5:9, 10:12, 5:12] == 1).all()  # the part of A beyond the crop stays


def test_each_prompt_is_one_undo_step_that_restores_the_voxels_exactly() -> None:
    seg = segmentation()
    editor = SegmentEditor(seg, np.zeros(GEOM.shape, np.int16))
    session = PromptSession(1)
    before = seg.labelmap.copy()
    first = session.request(point(world(6, 8, 8)), seg.labelmap, GEOM)
    assert first.prior is not None  # it refines part A
    region: Region = (slice(4, 10), slice(3, 16), slice(3, 16))
    mask = np.zeros((6, 13, 13), bool)
    mask[1:5, 1:11, 1:11] = True  # a bigger A
    edit = session.commit(first, Result(region, mask, np.ones_like(mask)), seg.labelmap,
                          editor.apply)
    assert edit is not None and edit.name == "AI: positive point"
    after_one = seg.labelmap.copy()
    assert after_one[5, 4, 4] == 1 and session.started and session.object is not None
    second = session.request(point(world(6, 4, 4), negative=True), seg.labelmap, GEOM)
    assert second.prior is session.object and len(second.prompts.negative) == 1
    mask2 = mask.copy()
    mask2[:, :3, :3] = False
    edit2 = session.commit(second, Result(region, mask2, np.ones_like(mask)), seg.labelmap,
                           editor.apply)
    assert edit2 is not None and edit2.name == "AI: negative point"
    undone = editor.undo()
    assert undone is edit2 and session.undone(undone)
    assert np.array_equal(seg.labelmap, after_one) and len(session.prompts.negative) == 0
    assert session.undone(editor.undo())  # type: ignore[arg-type]
    assert np.array_equal(seg.labelmap, before) and not session.started
    assert session.edits == []


def test_what_the_hand_erased_or_painted_in_a_session_stays_through_later_prompts() -> None:
    seg = segmentation()
    editor = SegmentEditor(seg, np.zeros(GEOM.shape, np.int16))
    session = PromptSession(1)
    region: Region = (slice(4, 10), slice(3, 16), slice(3, 16))
    first = session.request(point(world(6, 8, 8)), seg.labelmap, GEOM)
    session.commit(first, result_everywhere_in(region), seg.labelmap, editor.apply)
    assert seg.labelmap[region].min() == 1
    # the user erases a corner of the AI's mask and paints a voxel beside it by hand
    erase = seg.labelmap.copy()
    erase[4:10, 3:6, 3:6] = 0
    erase[7, 2, 8] = 1
    hand = editor.apply(Change("Erase", (slice(0, 20), slice(0, 40), slice(0, 40)), erase))
    assert hand is not None
    session.edited_by_hand(hand, seg.labelmap)
    assert session.object is not None and not session.object[5, 4, 4] and session.object[7, 2, 8]
    # the next prompt's model result covers the corner again and drops the painted voxel
    second = session.request(point(world(6, 12, 12)), seg.labelmap, GEOM)
    assert not second.prior[5, 4, 4]  # the model is told what the hand did
    again = result_everywhere_in((slice(4, 10), slice(2, 16), slice(2, 16)))  # grows at i = 2
    again.mask[:, 0, :] = False
    session.commit(second, again, seg.labelmap, editor.apply)
    assert (seg.labelmap[4:10, 3:6, 3:6] == 0).all()  # erased stays erased
    assert seg.labelmap[7, 2, 8] == 1  # painted stays painted
    assert seg.labelmap[6, 10, 10] == 1 and seg.labelmap[12, 15, 15] == 2
    # undoing the hand edit lifts its hold: a later prompt may cover the corner again
    assert session.undone(editor.undo())  # type: ignore[arg-type]  # the second prompt
    assert editor.undo() is hand
    session.edited_by_hand(hand, seg.labelmap, undo=True)
    assert session.by_hand == [] and session.object[5, 4, 4] and not session.object[7, 2, 8]
    third = session.request(point(world(6, 12, 12)), seg.labelmap, GEOM)
    session.commit(third, result_everywhere_in(region), seg.labelmap, editor.apply)
    assert (seg.labelmap[4:10, 3:6, 3:6] == 1).all()
