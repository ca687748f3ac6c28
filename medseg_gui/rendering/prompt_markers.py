"""The AI tool's prompts drawn in one slice view: points, boxes, scribbles and the live drag.

VTK only, no Qt. A prompt is data in LPS mm (:mod:`medseg_gui.inference.prompts`); this class
shows the ones that lie on the view's current slice (within half a slice step), so a point
clicked on axial slice 24 shows on that slice and, in the coronal and sagittal views, only where
their slice passes through it. Positive points are green discs, negative ones red, each with a
dark rim so that they stay visible on a bright overlay; boxes are green outlines (a rectangle
drawn on one slice is a line in the two other views), scribbles green or red strokes. The live
drag (a box being dragged, a stroke being drawn) is yellow.

The markers are rebuilt only when the slice, the camera scale or the prompts changed, in the
renderer's start event, after the slice view has placed its camera: a marker is
:data:`POINT_PX` pixels wide at every zoom.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from vtkmodules.vtkCommonCore import vtkCommand, vtkPoints, vtkUnsignedCharArray
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData

from medseg_gui.inference.prompts import Prompts
from medseg_gui.rendering.slice_view import SliceView, line_overlay

POSITIVE = (60, 220, 90)
NEGATIVE = (240, 60, 60)
PREVIEW = (255, 230, 60)
RIM = (20, 20, 20)
POINT_PX = 11.0  # marker diameter on screen
_Z = 2.2  # above the labels (0.5), the crosshair (1.0) and the brush cursor (2.0)
_SIDES = 16
FloatArray = npt.NDArray[np.float64]


class _Shapes:
    """Points, polygons and lines with one RGB colour per cell (one polydata, one actor)."""

    def __init__(self) -> None:
        self.points = vtkPoints()
        self.polys = vtkCellArray()
        self.lines = vtkCellArray()
        self.poly_colors: list[tuple[int, int, int]] = []
        self.line_colors: list[tuple[int, int, int]] = []

    def _add(self, xy: Sequence[Sequence[float]], z: float) -> list[int]:
        return [self.points.InsertNextPoint(float(x), float(y), z) for x, y in xy]

    def disc(self, xy: Sequence[float], radius: float, color: tuple[int, int, int]) -> None:
        a = np.linspace(0, 2 * np.pi, _SIDES, endpoint=False)
        ring = np.stack([xy[0] + radius * np.cos(a), xy[1] + radius * np.sin(a)], axis=1)
        self.polys.InsertNextCell(_SIDES, self._add(ring.tolist(), _Z))
        self.poly_colors.append(color)
        ids = self._add(ring.tolist(), _Z + 0.05)  # the rim, in front of the fill
        self.lines.InsertNextCell(_SIDES + 1, [*ids, ids[0]])
        self.line_colors.append(RIM)

    def line(self, xy: Sequence[Sequence[float]], color: tuple[int, int, int],
             closed: bool = False) -> None:
        if len(xy) < 2:
            return
        ids = self._add(xy, _Z + 0.1)
        self.lines.InsertNextCell(len(ids) + closed, [*ids, ids[0]] if closed else ids)
        self.line_colors.append(color)

    def polydata(self) -> vtkPolyData:
        # Cell data runs over vertices, then lines, then polygons.
        colors = vtkUnsignedCharArray()
        colors.SetNumberOfComponents(3)
        for c in self.line_colors + self.poly_colors:
            colors.InsertNextTuple3(*c)
        poly = vtkPolyData()
        poly.SetPoints(self.points)
        poly.SetLines(self.lines)
        poly.SetPolys(self.polys)
        poly.GetCellData().SetScalars(colors)
        return poly


def _rectangle(a: FloatArray, b: FloatArray) -> list[list[float]]:
    """Corners of the in-plane rectangle between two view points ``(X, Y, ...)``."""
    (x0, y0), (x1, y1) = a[:2], b[:2]
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


class PromptMarkers:
    """The prompts of one AI session (and the drag in progress) in one slice view.

    Parameters
    ----------
    view
        The slice view; the actor is added to its renderer.
    """

    def __init__(self, view: SliceView) -> None:
        self.view = view
        self.prompts = Prompts()
        self.visible = True
        self._preview: tuple[str, list[FloatArray], bool] | None = None
        self._key: Any = None
        self._mapper, self.actor = line_overlay(view)
        view.renderer.AddObserver(vtkCommand.StartEvent, self._update)
        self.shown: dict[str, int] = {}  # what the last render drew (tests read it)

    # -- state -----------------------------------------------------------------------------
    def set_prompts(self, prompts: Prompts) -> None:
        """The session's prompts (drawn at the next render)."""
        self.prompts = prompts
        self._key = None

    def set_visible(self, visible: bool) -> None:
        self.visible = visible
        self._key = None

    def preview_box(self, a: npt.ArrayLike, b: npt.ArrayLike) -> None:
        """The box being dragged between LPS corners ``a`` and ``b``."""
        self._preview = ("box", [np.asarray(a, float), np.asarray(b, float)], False)
        self._key = None

    def preview_stroke(self, points: Sequence[npt.ArrayLike], negative: bool = False) -> None:
        """The scribble being drawn through LPS ``points``."""
        self._preview = ("stroke", [np.asarray(p, float) for p in points], negative)
        self._key = None

    @property
    def preview(self) -> str | None:
        """``"box"`` or ``"stroke"`` while a drag is drawn, else ``None``."""
        return None if self._preview is None else self._preview[0]

    def clear_preview(self) -> None:
        if self._preview is not None:
            self._preview = None
            self._key = None

    # -- drawing ---------------------------------------------------------------------------
    def _update(self, *_: Any) -> None:
        layout = self.view.layout
        if layout is None or not self.visible:
            self.actor.VisibilityOff()
            return
        height = max(1, self.view.renderer.GetSize()[1])
        mm_per_px = 2 * self.view.renderer.GetActiveCamera().GetParallelScale() / height
        key = (id(layout), self.view.slice_index, round(mm_per_px, 4))
        if key == self._key:
            return
        self._key = key
        z = layout.slice_z(self.view.slice_index)
        near = layout.dz / 2 + 1e-3
        radius = POINT_PX / 2 * mm_per_px
        shapes = _Shapes()
        shown = {"positive": 0, "negative": 0, "boxes": 0, "scribbles": 0}

        def on_slice(world: Sequence[Sequence[float]]) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
            v = layout.world_to_view(np.asarray(world, dtype=np.float64).reshape(-1, 3))
            return v, np.abs(v[:, 2] - z) <= near

        for group, color, name in ((self.prompts.positive, POSITIVE, "positive"),
                                   (self.prompts.negative, NEGATIVE, "negative")):
            if group:
                v, ok = on_slice(group)
                for p in v[ok]:
                    shapes.disc(p, radius, color)
                shown[name] += int(ok.sum())
        for b in self.prompts.boxes:
            corners = layout.world_to_view(np.array([b.lo, b.hi]))
            zlo, zhi = np.sort(corners[:, 2])
            if zlo - near <= z <= zhi + near:
                shapes.line(_rectangle(corners[0], corners[1]), POSITIVE, closed=True)
                shown["boxes"] += 1
        for strokes, color in ((self.prompts.scribbles, POSITIVE),
                               (self.prompts.negative_scribbles, NEGATIVE)):
            for stroke in strokes:
                v, ok = on_slice(stroke)
                if ok.any():
                    shown["scribbles"] += 1
                    if ok.sum() == 1:
                        shapes.disc(v[ok][0], radius / 2, color)
                    shapes.line(v[ok][:, :2].tolist(), color)
        if self._preview is not None:
            kind, pts, negative = self._preview
            v = layout.world_to_view(np.asarray(pts).reshape(-1, 3))
            if kind == "box":
                shapes.line(_rectangle(v[0], v[-1]), PREVIEW, closed=True)
            else:
                shapes.line(v[:, :2].tolist(), NEGATIVE if negative else PREVIEW)
        self._mapper.SetInputData(shapes.polydata())
        self.actor.VisibilityOn()
        self.shown = shown

