"""Measured lines in one slice view: rulers and RECIST axes, each with its length in mm.

VTK only, no Qt. The lines are LPS mm (:mod:`medseg_gui.core.annotations`,
:mod:`medseg_gui.core.measurements`); one is drawn when both its ends lie on the view's current
slice (within half a slice step, :func:`on_slice`), so an axial ruler or RECIST axis shows on its
axial slice and nowhere else. Each line is labelled with its text next to its right-hand end; a
selected line gets square handles on its ends (:data:`HANDLE_PX` wide at every zoom), where the
ruler tool grabs it.

Like :mod:`medseg_gui.rendering.prompt_markers`, everything is one polydata on a
:func:`~medseg_gui.rendering.slice_view.line_overlay` actor plus text actors, rebuilt in the
renderer's start event only when the slice, the zoom or the lines changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from vtkmodules.vtkCommonCore import vtkCommand, vtkPoints, vtkUnsignedCharArray
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkRenderingCore import vtkTextActor

from medseg_gui.rendering.slice_view import SliceView, line_overlay
from medseg_gui.rendering.slicing import SliceLayout

RGB = tuple[int, int, int]
LONG: RGB = (255, 220, 40)
SHORT: RGB = (40, 220, 255)
RULER: RGB = (255, 140, 60)
HANDLE: RGB = (255, 255, 255)
HANDLE_PX = 8.0
_CHAR_PX = 8.0  # about one character of the 13 pt bold label
_Z = 2.3  # above the prompt markers (2.2)


@dataclass(frozen=True)
class DrawnLine:
    """A line to draw: LPS end points, colour, label, and whether it is selected."""

    start: tuple[float, float, float]
    end: tuple[float, float, float]
    color: RGB
    text: str
    selected: bool = False


def on_slice(layout: SliceLayout, slice_index: int,
             points: Sequence[Sequence[float]]) -> npt.NDArray[np.float64] | None:
    """The view coordinates of ``points`` when all lie on slice ``slice_index`` (within half a
    slice step), else ``None``."""
    v = layout.world_to_view(np.asarray(points, dtype=np.float64).reshape(-1, 3))
    near = layout.dz / 2 + 1e-3
    if np.any(np.abs(v[:, 2] - layout.slice_z(slice_index)) > near):
        return None
    return np.asarray(v, dtype=np.float64)


class MeasurementLines:
    """The measured lines of one slice view.

    Parameters
    ----------
    view
        The slice view; the actors are added to its renderer.
    """

    def __init__(self, view: SliceView) -> None:
        self.view = view
        self.lines: list[DrawnLine] = []
        self.visible = True
        self._key: Any = None
        self._mapper, self.actor = line_overlay(view)
        self._labels: list[vtkTextActor] = []
        view.renderer.AddObserver(vtkCommand.StartEvent, self._update)
        self.shown: list[str] = []  # the texts of the lines the last render drew (tests read it)

    def set_lines(self, lines: Sequence[DrawnLine]) -> None:
        """The lines to show (drawn at the next render)."""
        self.lines = list(lines)
        self._key = None

    def set_visible(self, visible: bool) -> None:
        self.visible = visible
        self._key = None

    def _label(self, n: int) -> vtkTextActor:
        while len(self._labels) <= n:
            text = vtkTextActor()
            prop = text.GetTextProperty()
            prop.SetFontSize(13)
            prop.BoldOn()
            prop.ShadowOn()
            text.GetPositionCoordinate().SetCoordinateSystemToWorld()
            text.PickableOff()
            self.view.renderer.AddViewProp(text)
            self._labels.append(text)
        return self._labels[n]

    def _update(self, *_: Any) -> None:
        layout = self.view.layout
        height = max(1, self.view.renderer.GetSize()[1])
        mm_per_px = 2 * self.view.renderer.GetActiveCamera().GetParallelScale() / height
        key = (id(layout), self.view.slice_index, self.visible, id(self.lines),
               round(mm_per_px, 4))
        if key == self._key:
            return
        self._key = key
        for text in self._labels:
            text.VisibilityOff()
        self.shown = []
        if layout is None or not self.visible:
            self.actor.VisibilityOff()
            return
        points, cells, colors = vtkPoints(), vtkCellArray(), vtkUnsignedCharArray()
        colors.SetNumberOfComponents(3)

        def polyline(xy: Sequence[Sequence[float]], color: RGB, closed: bool = False) -> None:
            ids = [points.InsertNextPoint(float(x), float(y), _Z) for x, y in xy]
            cells.InsertNextCell(len(ids) + closed, [*ids, ids[0]] if closed else ids)
            colors.InsertNextTuple3(*color)

        half = HANDLE_PX / 2 * mm_per_px
        camera = self.view.renderer.GetActiveCamera()
        width = self.view.renderer.GetSize()[0]
        x_max = camera.GetFocalPoint()[0] + camera.GetParallelScale() * width / height
        for line in self.lines:
            v = on_slice(layout, self.view.slice_index, [line.start, line.end])
            if v is None:
                continue
            polyline(v[:, :2].tolist(), line.color)
            if line.selected:
                for x, y, _ in v:
                    polyline([(x - half, y - half), (x + half, y - half), (x + half, y + half),
                              (x - half, y + half)], HANDLE, closed=True)
            # The text sits past the end that is further right, so it never covers the line;
            # past the left end instead when it would run off the view's right edge.
            right = v[int(np.argmax(v[:, 0]))]
            text = self._label(len(self.shown))
            text.SetInput(line.text)
            prop = text.GetTextProperty()
            prop.SetColor(*(c / 255 for c in line.color))
            pad = half + 1.0
            if right[0] + pad + len(line.text) * _CHAR_PX * mm_per_px > x_max:
                left = v[int(np.argmin(v[:, 0]))]
                prop.SetJustificationToRight()
                text.GetPositionCoordinate().SetValue(float(left[0]) - pad, float(left[1]), _Z)
            else:
                prop.SetJustificationToLeft()
                text.GetPositionCoordinate().SetValue(float(right[0]) + pad, float(right[1]),
                                                      _Z)
            text.VisibilityOn()
            self.shown.append(line.text)
        poly = vtkPolyData()
        poly.SetPoints(points)
        poly.SetLines(cells)
        poly.GetCellData().SetScalars(colors)
        self._mapper.SetInputData(poly)
        self.actor.VisibilityOn()
