"""Rulers and RECIST axes edited with the mouse, without Qt: what a press picks, what a drag
shows, and the one named step a gesture commits.

The ruler tool of the slice views (:mod:`medseg_gui.ui.measure_tool`) turns mouse positions into
LPS points on the view's slice and calls :class:`MeasureGesture`:

* a press on an end point of a ruler or of a RECIST axis (within :data:`END_PX` pixels) selects
  that line and drags that end; a press on a line's body selects it; a press anywhere else
  starts a new ruler, dragged to its other end;
* the release commits the gesture as one step: "Add ruler", "Move ruler", "Edit RECIST long
  axis" (the edited axis replaces the computed one from then on);
* Delete removes the selected ruler, or puts the selected axis back to the computed one
  ("Reset RECIST long axis").

Which lines may be picked is the caller's to say (those drawn on the view's current slice);
how far a line is from the mouse is measured in display pixels through the caller's
``world -> display`` mapping, so picking feels the same at every zoom.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from medseg_gui.core.annotations import (
    Annotations,
    AxisName,
    Point,
    ReadAxes,
    Ruler,
    as_point,
    distance_mm,
    edited_axis,
)

END_PX = 8.0  # an end point this close to the mouse is grabbed
BODY_PX = 5.0  # a line this close is selected
MIN_RULER_MM = 0.5  # a press and release closer than this is a click, not a ruler

ToDisplay = Callable[[Point], tuple[float, float] | None]


class Kind(StrEnum):
    RULER = "ruler"
    AXIS = "axis"


@dataclass(frozen=True)
class LineId:
    """Which measured line: a ruler by id, or the long or short axis of a segment."""

    kind: Kind
    ruler: str = ""
    label: int = 0
    axis: AxisName | None = None

    @staticmethod
    def of_ruler(ruler_id: str) -> LineId:
        return LineId(Kind.RULER, ruler=ruler_id)

    @staticmethod
    def of_axis(label: int, axis: AxisName) -> LineId:
        return LineId(Kind.AXIS, label=label, axis=axis)


@dataclass(frozen=True)
class MeasureLine:
    """A line as shown: its end points (LPS mm) and, for an axis, whether it was edited."""

    id: LineId
    start: Point
    end: Point
    edited: bool = False

    @property
    def length_mm(self) -> float:
        return distance_mm(self.start, self.end)


def measure_lines(notes: Annotations, axes: Iterable[ReadAxes] = ()) -> list[MeasureLine]:
    """The study's rulers and the given segments' RECIST axes (edited or computed)."""
    out = [MeasureLine(LineId.of_ruler(r.id), r.start, r.end) for r in notes.rulers]
    for a in axes:
        for name, axis, edit in ((AxisName.LONG, a.long, a.long_edit),
                                 (AxisName.SHORT, a.short, a.short_edit)):
            if axis is not None:
                out.append(MeasureLine(LineId.of_axis(a.label, name), axis.start, axis.end,
                                       edit is not None))
    return out


@dataclass(frozen=True)
class Pick:
    """What a press hit: a line, and which end (0 start, 1 end; ``None``: its body)."""

    line: LineId
    end: int | None


def pick(lines: Sequence[MeasureLine], xy: tuple[float, float], to_display: ToDisplay,
         end_px: float = END_PX, body_px: float = BODY_PX) -> Pick | None:
    """The end point nearest ``xy`` within ``end_px`` (display pixels), else the line whose
    body passes within ``body_px``, else ``None``."""
    best: tuple[float, Pick] | None = None
    bodies: list[tuple[float, Pick]] = []
    p = np.asarray(xy, dtype=float)
    for line in lines:
        a, b = to_display(line.start), to_display(line.end)
        if a is None or b is None:
            continue
        pa, pb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        for end, q in ((0, pa), (1, pb)):
            d = float(np.linalg.norm(p - q))
            if d <= end_px and (best is None or d < best[0]):
                best = (d, Pick(line.id, end))
        seg = pb - pa
        t = float(np.clip((p - pa) @ seg / max(float(seg @ seg), 1e-12), 0.0, 1.0))
        d = float(np.linalg.norm(p - (pa + t * seg)))
        if d <= body_px:
            bodies.append((d, Pick(line.id, None)))
    if best is not None:
        return best[1]
    return min(bodies, key=lambda b: b[0])[1] if bodies else None


@dataclass(frozen=True)
class _Drag:
    line: LineId | None  # None: a new ruler
    end: int
    start: Point
    current: Point


class MeasureGesture:
    """The selection and the drag in progress (one per study; Qt-free).

    Attributes
    ----------
    selected
        The line Delete acts on, or ``None``.
    """

    def __init__(self) -> None:
        self.selected: LineId | None = None
        self._drag: _Drag | None = None

    @property
    def dragging(self) -> bool:
        return self._drag is not None

    def press(self, world: npt.ArrayLike, picked: Pick | None,
              lines: Sequence[MeasureLine]) -> None:
        """Mouse press at ``world`` on what :func:`pick` found (see the module docstring)."""
        if picked is None:
            self.selected = None
            self._drag = _Drag(None, 1, as_point(world), as_point(world))
            return
        self.selected = picked.line
        line = next((ln for ln in lines if ln.id == picked.line), None)
        if picked.end is None or line is None:
            self._drag = None
            return
        fixed = line.end if picked.end == 0 else line.start
        self._drag = _Drag(picked.line, picked.end, fixed, as_point(world))

    def move(self, world: npt.ArrayLike) -> bool:
        """Mouse move while dragging; True when the shown lines changed."""
        if self._drag is None:
            return False
        self._drag = replace(self._drag, current=as_point(world))
        return True

    def preview(self, lines: Sequence[MeasureLine]) -> list[MeasureLine]:
        """``lines`` as the drag shows them (the moved end, or the new ruler appended)."""
        drag = self._drag
        if drag is None:
            return list(lines)
        if drag.line is None:
            return [*lines, MeasureLine(LineId.of_ruler(""), drag.start, drag.current)]
        return [self._moved(ln, drag) if ln.id == drag.line else ln for ln in lines]

    @staticmethod
    def _moved(line: MeasureLine, drag: _Drag) -> MeasureLine:
        a, b = (drag.current, drag.start) if drag.end == 0 else (drag.start, drag.current)
        return replace(line, start=a, end=b, edited=line.id.kind is Kind.AXIS or line.edited)

    def release(self, notes: Annotations, lines: Sequence[MeasureLine]
                ) -> tuple[str, Annotations] | None:
        """End the drag: the step to commit (its name and the new annotations), or ``None``
        (a click, or an end dropped where it was)."""
        drag, self._drag = self._drag, None
        if drag is None:
            return None
        if drag.line is None:
            if distance_mm(drag.start, drag.current) < MIN_RULER_MM:
                return None
            ruler = Ruler.new(drag.start, drag.current)
            self.selected = LineId.of_ruler(ruler.id)
            return "Add ruler", notes.with_ruler(ruler)
        line = next((ln for ln in lines if ln.id == drag.line), None)
        if line is None:
            return None
        moved = self._moved(line, drag)
        if (moved.start, moved.end) == (line.start, line.end):
            return None
        if drag.line.kind is Kind.RULER:
            old = notes.ruler(drag.line.ruler)
            if old is None:
                return None
            return "Move ruler", notes.with_ruler(replace(old, start=moved.start,
                                                          end=moved.end))
        axis = drag.line.axis or AxisName.LONG
        edit = edited_axis(drag.line.label, axis, moved.start, moved.end)
        return f"Edit RECIST {axis.value} axis", notes.with_axis(edit)

    def cancel(self) -> bool:
        """Escape: drop the drag; True if there was one."""
        had, self._drag = self._drag is not None, None
        return had

    def delete(self, notes: Annotations) -> tuple[str, Annotations] | None:
        """Delete: remove the selected ruler, or reset the selected edited axis to the
        computed one; ``None`` when nothing deletable is selected (a computed axis)."""
        sel = self.selected
        if sel is None:
            return None
        if sel.kind is Kind.RULER and notes.ruler(sel.ruler) is not None:
            self.selected = None
            return "Delete ruler", notes.without_ruler(sel.ruler)
        if sel.kind is Kind.AXIS and sel.axis is not None and \
                notes.axis(sel.label, sel.axis) is not None:
            return (f"Reset RECIST {sel.axis.value} axis",
                    notes.without_axes(sel.label, sel.axis))
        return None
