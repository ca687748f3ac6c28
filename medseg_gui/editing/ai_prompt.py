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


def prompt_change(labelmap: LabelArray, label: int, result: PromptResult,
                  object_before: BoolArray | None, *, name: str,
                  constraint: PaintConstraint = NO_CONSTRAINT,
                  image: npt.NDArray[Any] | None = None) -> tuple[Change, BoolArray]:
    """The edit that puts ``result`` into segment ``label`` (see the module docstring) and the
    object's voxels inside ``result.region`` afterwards."""
    region = result.region
    old = labelmap[region]
    before = object_before[region] if object_before is not None else np.zeros(old.shape, bool)
    new_object = np.where(result.covered, result.mask, before)
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
                                       image=image)
        edit = apply(change)
        obj = np.zeros(labelmap.shape, dtype=bool) if request.prior is None else \
            request.prior.copy()
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

    @property
    def edits(self) -> list[Edit]:
        """This session's undo steps, oldest first (what Reset undoes)."""
        return [s.edit for s in self.steps if s.edit is not None]

