"""Prompts for the promptable model, as data: points, boxes and scribbles in LPS millimetres.

A prompt is what the user said about one object, not a mouse event: positive points (on the
object), negative points (not on it), boxes (a 3D box, or a rectangle on one slice when one side
is flat) and scribbles (strokes of points, positive or negative). The viewer's readout shows
exactly these coordinates, the CLI takes them, and the training code simulates them. The
object's current mask, when there is one, travels beside the prompts (see
:func:`medseg_gui.inference.interactive.predict`).

:func:`check_prompts` refuses prompts that cannot mean anything on a study: a point outside the
image, an empty box, nothing positive at all; each refusal is one :class:`PromptError` line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg_gui.core.geometry import Geometry
from medseg_gui.io.errors import LoadError

Point = tuple[float, float, float]


class PromptError(LoadError):
    """A prompt that cannot be used (outside the image, an empty box...): one clear line."""


def _point(values: Iterable[float], what: str) -> Point:
    arr = np.asarray(list(values), dtype=np.float64).reshape(-1)
    if arr.shape != (3,) or not np.all(np.isfinite(arr)):
        raise PromptError(what, "a point needs three finite numbers X,Y,Z (LPS mm)")
    return (float(arr[0]), float(arr[1]), float(arr[2]))


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in LPS mm between two opposite corners. A side shorter than
    :data:`FLAT_MM` makes it a rectangle on one slice (what a drag in a slice view gives)."""

    a: Point
    b: Point

    @property
    def lo(self) -> npt.NDArray[np.float64]:
        out: npt.NDArray[np.float64] = np.minimum(np.asarray(self.a), np.asarray(self.b))
        return out

    @property
    def hi(self) -> npt.NDArray[np.float64]:
        out: npt.NDArray[np.float64] = np.maximum(np.asarray(self.a), np.asarray(self.b))
        return out


FLAT_MM = 1e-3


@dataclass(frozen=True)
class Prompts:
    """Everything the user said about one object (all coordinates LPS mm).

    Parameters
    ----------
    positive, negative
        Clicked points on / off the object.
    boxes
        Boxes around the object (usually one).
    scribbles, negative_scribbles
        Strokes (each a sequence of points) drawn on / off the object.
    """

    positive: tuple[Point, ...] = ()
    negative: tuple[Point, ...] = ()
    boxes: tuple[Box, ...] = ()
    scribbles: tuple[tuple[Point, ...], ...] = ()
    negative_scribbles: tuple[tuple[Point, ...], ...] = ()
    names: tuple[str, ...] = field(default=(), compare=False)

    @property
    def empty(self) -> bool:
        return not (self.positive or self.negative or self.boxes or self.scribbles
                    or self.negative_scribbles)

    @property
    def has_positive(self) -> bool:
        return bool(self.positive or self.boxes or self.scribbles)

    def add(self, other: Prompts) -> Prompts:
        """These prompts followed by ``other``'s (a session accumulating clicks)."""
        return Prompts(self.positive + other.positive, self.negative + other.negative,
                       self.boxes + other.boxes, self.scribbles + other.scribbles,
                       self.negative_scribbles + other.negative_scribbles,
                       self.names + other.names)

    def positive_points(self) -> npt.NDArray[np.float64]:
        """Every point that says where the object is: clicks, box corners, scribble points."""
        pts: list[Sequence[float]] = list(self.positive)
        for box in self.boxes:
            pts += [tuple(box.lo), tuple(box.hi)]
        for stroke in self.scribbles:
            pts += list(stroke)
        return np.asarray(pts, dtype=np.float64).reshape(-1, 3)

    def all_points(self) -> npt.NDArray[np.float64]:
        pts = [self.positive_points(), np.asarray(self.negative).reshape(-1, 3)]
        pts += [np.asarray(s, dtype=np.float64).reshape(-1, 3) for s in self.negative_scribbles]
        return np.concatenate(pts, axis=0)

    def describe(self) -> str:
        """``"AI: positive point"``-style name of the last prompt, for the Undo menu."""
        return f"AI: {self.names[-1]}" if self.names else "AI prompt"

    def to_json(self) -> dict[str, Any]:
        return {"positive": [list(p) for p in self.positive],
                "negative": [list(p) for p in self.negative],
                "boxes": [[list(b.a), list(b.b)] for b in self.boxes],
                "scribbles": [[list(p) for p in s] for s in self.scribbles],
                "negative_scribbles": [[list(p) for p in s] for s in self.negative_scribbles]}


def point(xyz: Iterable[float], *, negative: bool = False) -> Prompts:
    """One positive (or negative) click."""
    p = _point(xyz, "point")
    if negative:
        return Prompts(negative=(p,), names=("negative point",))
    return Prompts(positive=(p,), names=("positive point",))


def box(a: Iterable[float], b: Iterable[float]) -> Prompts:
    """A box (or a rectangle on one slice) between two corners."""
    return Prompts(boxes=(Box(_point(a, "box"), _point(b, "box")),), names=("box",))


def scribble(points: Iterable[Iterable[float]], *, negative: bool = False) -> Prompts:
    """One stroke of points."""
    stroke = tuple(_point(p, "scribble") for p in points)
    if not stroke:
        raise PromptError("scribble", "a scribble needs at least one point")
    if negative:
        return Prompts(negative_scribbles=(stroke,), names=("negative scribble",))
    return Prompts(scribbles=(stroke,), names=("scribble",))


def parse_triple(text: str, what: str) -> Point:
    """``"X,Y,Z"`` (LPS mm) from the command line."""
    try:
        return _point((float(v) for v in text.split(",")), what)
    except ValueError as exc:
        raise PromptError(what, f"{text!r}: expected X,Y,Z in LPS mm") from exc


def parse_box(text: str) -> Box:
    """``"X1,Y1,Z1,X2,Y2,Z2"`` (LPS mm) from the command line."""
    try:
        v = [float(x) for x in text.split(",")]
    except ValueError as exc:
        raise PromptError("--box", f"{text!r}: expected X1,Y1,Z1,X2,Y2,Z2 in LPS mm") from exc
    if len(v) != 6:
        raise PromptError("--box", f"{text!r}: expected six numbers X1,Y1,Z1,X2,Y2,Z2")
    return Box(_point(v[:3], "--box"), _point(v[3:], "--box"))


def check_prompts(prompts: Prompts, geometry: Geometry, *, has_prior: bool = False) -> None:
    """Refuse prompts that cannot be used on a study of ``geometry``.

    Raises
    ------
    PromptError
        No prompt at all; nothing positive and no prior mask to refine; a point or scribble
        outside the image; a box that is empty (two sides flat) or lies outside the image.
    """
    if prompts.empty:
        raise PromptError("prompt", "no prompt given: add a point, a box or a scribble")
    if not prompts.has_positive and not has_prior:
        raise PromptError("prompt", "only negative prompts and no mask to refine: add a "
                          "positive point, a box or a scribble on the object")
    for kind, pts in (("point", prompts.positive), ("negative point", prompts.negative),
                      ("scribble point", [p for s in prompts.scribbles for p in s]),
                      ("negative scribble point",
                       [p for s in prompts.negative_scribbles for p in s])):
        for p in pts:
            if not _inside(geometry, p):
                raise PromptError(f"{kind} {_fmt(p)}", "outside the image "
                                  f"({_extent(geometry)})")
    for b in prompts.boxes:
        flat = int(np.sum(b.hi - b.lo < FLAT_MM))
        if flat >= 2:
            raise PromptError(f"box {_fmt(b.a)} to {_fmt(b.b)}", "the box is empty (two or "
                              "three of its sides have no length)")
        if not _box_meets(geometry, b):
            raise PromptError(f"box {_fmt(b.a)} to {_fmt(b.b)}", "outside the image "
                              f"({_extent(geometry)})")


def _inside(geometry: Geometry, p: Sequence[float] | npt.NDArray[np.float64]) -> bool:
    ijk = geometry.world_to_index(np.asarray(p, dtype=np.float64))
    return bool(np.all(ijk >= -0.5) and np.all(ijk <= np.asarray(geometry.size_ijk) - 0.5))


def _world_corners(geometry: Geometry) -> npt.NDArray[np.float64]:
    corners = np.array([[i, j, k] for i in (0, geometry.size_ijk[0] - 1)
                        for j in (0, geometry.size_ijk[1] - 1)
                        for k in (0, geometry.size_ijk[2] - 1)], dtype=np.float64)
    return geometry.index_to_world(corners)


def _box_meets(geometry: Geometry, b: Box) -> bool:
    """Whether the box and the image's world bounding box overlap."""
    world = _world_corners(geometry)
    return bool(np.all(b.hi >= world.min(axis=0)) and np.all(b.lo <= world.max(axis=0)))


def _fmt(p: Sequence[float] | npt.NDArray[np.float64]) -> str:
    return ",".join(f"{float(v):.1f}" for v in p)


def _extent(geometry: Geometry) -> str:
    world = _world_corners(geometry)
    lo, hi = world.min(axis=0), world.max(axis=0)
    return "image spans " + " ".join(f"{a}{lo[n]:.1f}..{hi[n]:.1f}" for n, a in
                                      enumerate("XYZ")) + " mm"
