"""The promptable model's results as edits: one undo step per prompt, under the paint rules.

A :class:`PromptSession` is one object being segmented in one segment. Its first prompt decides
what the object is: the parts (connected components) of the segment that the prompts lie in or
near (within :data:`NEAR_MM` of their bounding box) or that a box overlaps, so a click on an
automatic draft refines that draft, and a click on another lesion starts a new object beside the
ones already in the segment. Every prompt runs the model with all the session's prompts and the
object's current mask as the prior (:class:`PromptRequest`, computed off the GUI thread), and
:meth:`PromptSession.commit` writes the result into the segment as one named
:class:`~medseg_gui.editing.base.Change` through the editor: inside the crop the object becomes
the model's mask, the rest of the segment stays, other segments change only where the paint
rules allow (``Overwrite.ALL``, not locked), and nothing outside the crop changes.
Undo of a prompt's step restores the voxels exactly and drops that prompt from the session.

What the user paints or erases by hand in the segment during a session (brush, eraser, fill,
...) is the object's truth from then on: it enters the object's mask (so the model's prior says
so too) and later prompts leave those voxels as the hand left them, as in ITK-SNAP, where the
user's strokes are never overwritten by the next run. Undoing such an edit lifts that again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from medseg_gui.core.geometry import Geometry
from medseg_gui.editing.base import BoolArray, Change, LabelArray, Region
from medseg_gui.editing.constraints import NO_CONSTRAINT, PaintConstraint
from medseg_gui.editing.history import Edit
from medseg_gui.inference.prompts import Prompts

NEAR_MM = 10.0


class PromptResult(Protocol):
    """What :func:`medseg_gui.inference.interactive.predict` returns, as far as editing needs:
    the object's mask in ``region`` of the study grid and the voxels the crop covered."""

    region: Region
    mask: BoolArray
    covered: BoolArray


def find_object(labelmap: LabelArray, label: int, prompts: Prompts, geometry: Geometry,
                near_mm: float = NEAR_MM) -> BoolArray | None:
    """The parts of segment ``label`` that ``prompts`` refine (see the module docstring), or
    ``None`` when they point at something the segment does not hold yet."""
    box = _bounds(labelmap == label)
    if box is None:
        return None
    sub = labelmap[box] == label
    parts, count = ndimage.label(sub, structure=np.ones((3, 3, 3), dtype=bool))
    if count == 0:
        return None
    objects = ndimage.find_objects(parts)
    offset = np.array([s.start for s in box])  # k, j, i
    spacing = np.asarray(geometry.spacing[::-1])
    margin = np.ceil(near_mm / spacing).astype(int)
    points = prompts.all_points()
    kji = np.rint(geometry.world_to_index(points)[:, ::-1]).astype(int) if len(points) else \
        np.zeros((0, 3), int)
    boxes = [(np.floor(geometry.world_to_index(b.lo)[::-1]), np.ceil(geometry.world_to_index(
        b.hi)[::-1])) for b in prompts.boxes]
    keep: list[int] = []
    for n, sl in enumerate(objects, start=1):
        if sl is None:
            continue
        lo = offset + np.array([s.start for s in sl])
        hi = offset + np.array([s.stop for s in sl]) - 1
        near = bool(np.any(np.all((kji >= lo - margin) & (kji <= hi + margin), axis=1)))
        for a, b in boxes:  # the box overlaps the part (one voxel of slack)
            a, b = np.minimum(a, b), np.maximum(a, b)
            near |= bool(np.all(b >= lo - 1) and np.all(a <= hi + 1))
        if near:
            keep.append(n)
    if not keep:
        return None
    out = np.zeros(labelmap.shape, dtype=bool)
    out[box] = np.isin(parts, keep)
    return out


def _bounds(mask: BoolArray) -> Region | None:
    idx = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax))) for ax in
           range(3)]
    if any(i.size == 0 for i in idx):
        return None
    return (slice(int(idx[0][0]), int(idx[0][-1]) + 1), slice(int(idx[1][0]), int(idx[1][-1]) + 1),
            slice(int(idx[2][0]), int(idx[2][-1]) + 1))


def _hand_voxels(edit: Edit, label: int) -> tuple[BoolArray, BoolArray]:
    """The voxels of ``edit.region`` that ``edit`` put into segment ``label`` and those it took
    out of it."""
    changed = edit.changed_mask()
    old = np.zeros(changed.shape, dtype=np.dtype(edit.dtype))
    new = old.copy()
    old[changed], new[changed] = edit.values("old"), edit.values("new")
    return changed & (new == label) & (old != label), changed & (old == label) & (new != label)


def _overlap(a: Region, b: Region) -> tuple[Region, Region] | None:
    """The common box of ``a`` and ``b`` as slices into each, or ``None``."""
    lo = [max(x.start, y.start) for x, y in zip(a, b, strict=True)]
    hi = [min(x.stop, y.stop) for x, y in zip(a, b, strict=True)]
    if any(h <= lo_ for lo_, h in zip(lo, hi, strict=True)):
        return None
    ia = tuple(slice(l_ - x.start, h - x.start) for l_, h, x in zip(lo, hi, a, strict=True))
    ib = tuple(slice(l_ - y.start, h - y.start) for l_, h, y in zip(lo, hi, b, strict=True))
    return (ia[0], ia[1], ia[2]), (ib[0], ib[1], ib[2])


def prompt_change(labelmap: LabelArray, label: int, result: PromptResult,
                  object_before: BoolArray | None, *, name: str,
                  constraint: PaintConstraint = NO_CONSTRAINT,
                  image: npt.NDArray[Any] | None = None,
                  by_hand: tuple[Edit, ...] = ()) -> tuple[Change, BoolArray]:
    """The edit that puts ``result`` into segment ``label`` (see the module docstring) and the
    object's voxels inside ``result.region`` afterwards; ``by_hand``: the user's own edits of
    the session, oldest first, whose voxels stay as the hand left them."""
    region = result.region
    old = labelmap[region]
    before = object_before[region] if object_before is not None else np.zeros(old.shape, bool)
    new_object = np.where(result.covered, result.mask, before)
    for edit in by_hand:
        both = _overlap(region, edit.region) if edit.region is not None else None
        if both is not None:
            added, erased = _hand_voxels(edit, label)
            here, there = both
            new_object[here] = (new_object[here] & ~erased[there]) | added[there]
    was = old == label
    target = (was & ~before) | new_object
    new = old.copy()
    if label in constraint.locked:
        return Change(name, None, None), before & was
    new[was & ~target] = 0
    paint = target & ~was
    sub_image = image[region] if image is not None and constraint.hu_range else None
    allowed = constraint.allowed(old, sub_image, label, erase=False)
    if allowed is not None:
        paint &= allowed
    new[paint] = label
    return Change(name, region, new), new_object & (new == label)


@dataclass(frozen=True)
class PromptRequest:
    """What to run: every prompt of the session so far and the object's current mask."""

    prompts: Prompts
    prior: BoolArray | None
    new: Prompts


@dataclass
class _Step:
    prompts: Prompts
    object: BoolArray | None
    edit: Edit | None


@dataclass
class PromptSession:
    """One object in segment ``label`` being segmented with prompts (module docstring)."""

    label: int
    prompts: Prompts = field(default_factory=Prompts)
    object: BoolArray | None = None
    started: bool = False
    steps: list[_Step] = field(default_factory=list)
    by_hand: list[Edit] = field(default_factory=list)

    def request(self, new: Prompts, labelmap: LabelArray, geometry: Geometry) -> PromptRequest:
        """The model run for ``new`` added to the session (call off the GUI thread: the first
        prompt labels the segment's connected parts)."""
        prompts = self.prompts.add(new)
        prior = self.object if self.started else find_object(labelmap, self.label, prompts,
                                                              geometry)
        return PromptRequest(prompts, prior, new)

    def commit(self, request: PromptRequest, result: PromptResult, labelmap: LabelArray,
               apply: Any, *, constraint: PaintConstraint = NO_CONSTRAINT,
               image: npt.NDArray[Any] | None = None) -> Edit | None:
        """Write ``result`` through ``apply`` (the editor's ``apply``: one undo step) and make
        it the object's mask for the next prompt."""
        change, inside = prompt_change(labelmap, self.label, result, request.prior,
                                       name=request.new.describe(), constraint=constraint,
                                       image=image, by_hand=tuple(self.by_hand))
        edit = apply(change)
        base = self.object if self.object is not None else request.prior  # hand edits since
        obj = np.zeros(labelmap.shape, dtype=bool) if base is None else base.copy()
        obj[result.region] = inside
        self.steps.append(_Step(self.prompts, self.object, edit))
        self.prompts, self.object, self.started = request.prompts, obj, True
        return edit  # type: ignore[no-any-return]

    def undone(self, edit: Edit) -> bool:
        """Forget the last prompt if ``edit`` (just undone) is its step; True if it was."""
        if self.steps and self.steps[-1].edit is edit:
            step = self.steps.pop()
            self.prompts, self.object = step.prompts, step.object
            self.started = bool(self.steps)
            return True
        return False

    def edited_by_hand(self, edit: Edit, labelmap: LabelArray, *, undo: bool = False) -> None:
        """The user edited the label map (``undo``: undid such an edit) during the session:
        the object follows the segment where ``edit`` changed it, and later prompts keep those
        voxels as the hand left them (module docstring)."""
        if edit.region is None:
            return
        if undo:
            self.by_hand = [e for e in self.by_hand if e is not edit]
        else:
            self.by_hand.append(edit)
        if self.object is not None:  # a new array: a running prediction may read the old one
            changed = edit.changed_mask()
            obj = self.object.copy()
            obj[edit.region][changed] = labelmap[edit.region][changed] == self.label
            self.object = obj

    @property
    def edits(self) -> list[Edit]:
        """This session's undo steps, oldest first (what Reset undoes)."""
        return [s.edit for s in self.steps if s.edit is not None]

