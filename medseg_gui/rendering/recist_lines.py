"""RECIST long and short axes drawn in one slice view, with their lengths.

VTK only, no Qt. The axes come from :mod:`medseg_gui.core.measurements` in LPS mm; a line is
drawn when both its ends lie on the view's current slice (within half a slice step), so the
axes of an axial RECIST measurement show on their axial slice and nowhere else. The long axis
is yellow, the short axis cyan, each labelled with its length in mm next to its end. Display
only: the axes are measured from the mask, not edited here.

Like :mod:`medseg_gui.rendering.prompt_markers`, the lines are rebuilt in the renderer's start
event, and only when the slice or the axes changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from vtkmodules.vtkCommonCore import vtkCommand, vtkPoints, vtkUnsignedCharArray
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkRenderingCore import vtkTextActor

from medseg_gui.core.measurements import Axis, Recist
from medseg_gui.rendering.slice_view import SliceView, line_overlay

LONG = (255, 220, 40)
SHORT = (40, 220, 255)
_Z = 2.3  # above the prompt markers (2.2)


class RecistLines:
    """The RECIST axes of some segments in one slice view.

    Parameters
    ----------
    view
        The slice view; the actors are added to its renderer.
    """

    def __init__(self, view: SliceView) -> None:
        self.view = view
        self.axes: list[Recist] = []
        self.visible = True
        self._key: Any = None
        self._mapper, self.actor = line_overlay(view)
        self._labels: list[vtkTextActor] = []
        view.renderer.AddObserver(vtkCommand.StartEvent, self._update)
        self.shown = 0  # lines the last render drew (tests read it)

    def set_axes(self, axes: Sequence[Recist]) -> None:
        """The axes to show (drawn at the next render)."""
        self.axes = list(axes)
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
        key = (id(layout), self.view.slice_index, self.visible, id(self.axes))
        if key == self._key:
            return
        self._key = key
        for text in self._labels:
            text.VisibilityOff()
        self.shown = 0
        if layout is None or not self.visible:
            self.actor.VisibilityOff()
            return
        z = layout.slice_z(self.view.slice_index)
        near = layout.dz / 2 + 1e-3
        points, lines, colors = vtkPoints(), vtkCellArray(), vtkUnsignedCharArray()
        colors.SetNumberOfComponents(3)
        lines_on: list[tuple[Axis, tuple[int, int, int]]] = []
        for recist in self.axes:
            lines_on += [(recist.long, LONG)]
            if recist.short is not None:
                lines_on += [(recist.short, SHORT)]
        for axis, color in lines_on:
            v = layout.world_to_view(np.array([axis.start, axis.end]))
            if np.any(np.abs(v[:, 2] - z) > near):
                continue
            ids = [points.InsertNextPoint(float(x), float(y), _Z) for x, y, _ in v]
            lines.InsertNextCell(2, ids)
            colors.InsertNextTuple3(*color)
            # The length sits past the end that is further right, so it never covers the line.
            end = v[int(np.argmax(v[:, 0]))]
            text = self._label(self.shown)
            text.SetInput(f"{axis.length_mm:.1f} mm")
            text.GetTextProperty().SetColor(*(c / 255 for c in color))
            text.GetPositionCoordinate().SetValue(float(end[0]) + 2.0, float(end[1]), _Z)
            text.VisibilityOn()
            self.shown += 1
        poly = vtkPolyData()
        poly.SetPoints(points)
        poly.SetLines(lines)
        poly.GetCellData().SetScalars(colors)
        self._mapper.SetInputData(poly)
        self.actor.VisibilityOn()
