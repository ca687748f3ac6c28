"""What a slice view draws while the user edits: the brush cursor, the lasso, dirty-slice tests.

VTK only, no Qt. Everything is placed in the view coordinates of
:mod:`medseg_gui.rendering.slicing` (mm, the current slice at ``Z = 0``), so a brush of
``d`` mm is a circle of diameter ``d`` on screen at every zoom and on any voxel spacing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkFiltersSources import vtkRegularPolygonSource
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper, vtkRenderer

from medseg_gui.core.geometry import Geometry
from medseg_gui.rendering.slicing import SliceLayout

# Above the labels (0.5) and the crosshair (1.0), towards the camera.
_CURSOR_Z = 2.0
Region = tuple[slice, slice, slice]


class BrushCursor:
    """A circle outline of the brush size following the mouse in one view.

    Parameters
    ----------
    renderer
        The slice view's renderer; the actor is added to it (hidden until :meth:`show_at`).
    """

    def __init__(self, renderer: vtkRenderer) -> None:
        self._rings: list[vtkRegularPolygonSource] = []
        self.actors: list[vtkActor] = []
        # The outline, a dot at the stamp's centre, and an inner ring shown for the 3D sphere
        # (its outline one slice away is smaller: the ring hints at a ball, not a flat disc).
        for sides, width in ((64, 2.0), (12, 1.0), (48, 1.0)):
            source = vtkRegularPolygonSource()
            source.SetNumberOfSides(sides)
            source.GeneratePolygonOff()
            source.SetCenter(0.0, 0.0, 0.0)
            mapper = vtkPolyDataMapper()
            mapper.SetInputConnection(source.GetOutputPort())
            actor = vtkActor()
            actor.SetMapper(mapper)
            actor.GetProperty().SetLineWidth(width)
            actor.GetProperty().LightingOff()
            actor.PickableOff()
            actor.VisibilityOff()
            renderer.AddViewProp(actor)
            self._rings.append(source)
            self.actors.append(actor)
        self._rings[1].SetRadius(0.6)
        self._sphere = False
        self.set_style((1.0, 1.0, 0.3))

    @property
    def visible(self) -> bool:
        return bool(self.actors[0].GetVisibility())

    @property
    def radius_mm(self) -> float:
        return float(self._rings[0].GetRadius())

    def set_style(self, color: Sequence[float], sphere: bool = False) -> None:
        """Outline colour (RGB 0..1); ``sphere`` adds the inner ring of the 3D brush."""
        for actor in self.actors:
            actor.GetProperty().SetColor(*(float(c) for c in color))
        self.actors[2].GetProperty().SetOpacity(0.6)
        self._sphere = sphere
        if not sphere:
            self.actors[2].VisibilityOff()

    def show_at(self, view_xy: Sequence[float], diameter_mm: float) -> None:
        """Centre the circle on view point ``(X, Y)`` with the brush diameter in mm."""
        radius = max(float(diameter_mm) / 2.0, 0.25)
        if abs(radius - self._rings[0].GetRadius()) > 1e-9:
            self._rings[0].SetRadius(radius)
            self._rings[2].SetRadius(radius * 0.6)
        for n, actor in enumerate(self.actors):
            actor.SetPosition(float(view_xy[0]), float(view_xy[1]), _CURSOR_Z)
            actor.SetVisibility(n != 2 or self._sphere)

    def hide(self) -> None:
        for actor in self.actors:
            actor.VisibilityOff()


class LassoLine:
    """An open polyline (the scissors' polygon as it is drawn) in one view."""

    def __init__(self, renderer: vtkRenderer) -> None:
        self._points = vtkPoints()
        self._poly = vtkPolyData()
        self._poly.SetPoints(self._points)
        self._poly.SetLines(vtkCellArray())
        mapper = vtkPolyDataMapper()
        mapper.SetInputData(self._poly)
        self.actor = vtkActor()
        self.actor.SetMapper(mapper)
        self.actor.GetProperty().SetColor(1.0, 1.0, 0.3)
        self.actor.GetProperty().SetLineWidth(2.0)
        self.actor.GetProperty().LightingOff()
        self.actor.VisibilityOff()
        renderer.AddViewProp(self.actor)

    def set_points(self, view_xy: Sequence[Sequence[float]]) -> None:
        """Draw the polyline through view points ``(X, Y)`` (hidden with fewer than two)."""
        self._points.Reset()
        for x, y in view_xy:
            self._points.InsertNextPoint(float(x), float(y), _CURSOR_Z)
        lines = vtkCellArray()
        n = len(view_xy)
        if n >= 2:
            lines.InsertNextCell(n + 1, [*range(n), 0])  # closed: shows what will be cut
        self._poly.SetLines(lines)
        self._points.Modified()
        self._poly.Modified()
        self.actor.SetVisibility(n >= 2)


def view_axis_of(layout: SliceLayout, geometry: Geometry) -> int:
    """The array axis (0 = k, 1 = j, 2 = i) best aligned with a view's normal.

    A 2D brush in that view is flat across this axis (the editing core's ``ViewAxis``).
    """
    normal = layout.rotation[:, 2]
    d = geometry.direction_matrix
    cos = np.abs(d.T @ normal)  # per index axis i, j, k
    return 2 - int(np.argmax(cos))


def region_on_slice(layout: SliceLayout, geometry: Geometry, region: Region,
                    slice_index: int) -> bool:
    """Whether a box of the label map (array order) crosses a view's slice ``slice_index``.

    Views whose slice misses the box need no redraw after the edit.
    """
    k, j, i = region
    lo = np.array([i.start, j.start, k.start], dtype=np.float64) - 0.5
    hi = np.array([i.stop, j.stop, k.stop], dtype=np.float64) - 0.5
    corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1])
                        for c in (lo[2], hi[2])])
    z = layout.world_to_view(geometry.index_to_world(corners))[:, 2]
    zs = layout.slice_z(slice_index)
    return bool(z.min() - 1e-6 <= zs <= z.max() + 1e-6)


def world_to_view_xy(layout: SliceLayout, world: npt.ArrayLike) -> tuple[float, float]:
    """The in-plane view coordinates ``(X, Y)`` of an LPS point."""
    x, y, _ = layout.world_to_view(world)
    return float(x), float(y)
