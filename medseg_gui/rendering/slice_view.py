"""One slice view as a VTK pipeline (a ``vtkRenderer``, no widget).

``volume -> vtkImageReslice -> vtkImageMapToColors (grey ramp) -> SliceLayer`` and
``labels -> vtkImageReslice (nearest) -> vtkImageMapToColors -> SliceLayer`` on top, plus
crosshair lines and orientation letters. A :class:`~medseg_gui.rendering.slice_layer.SliceLayer`
is an unlit textured quad: on software OpenGL the frame time is the pixels shaded (see there).
The AI's probability (optional, off by default) is a second layer of the same shape under the
labels, with its own colour table and opacity; while it is off its reslice is neither moved
with the slice nor run, so scrolling costs what it did.

The renderer's world coordinates are the view coordinates of :mod:`medseg_gui.rendering.slicing`
with the current slice at ``Z = 0``; the camera looks down ``-Z`` with ``+Y`` up, so the
radiological convention comes from the :class:`~medseg_gui.rendering.slicing.SliceLayout`,
never from the camera.

What a slice change costs: moving the crosshair re-runs a reslice only where the plane moved
(the other views' planes stay; only their crosshair lines move), and order-independent
translucency is off, because the layers are flat, drawn back to front in a fixed order, and
VTK's OIT pass added several full-window passes per frame (about half the frame on llvmpipe).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

# The OpenGL and FreeType back-ends register the factories that make rendering possible.
import vtkmodules.vtkRenderingFreeType
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401
from vtkmodules.vtkCommonCore import vtkCommand, vtkPoints, vtkScalarsToColors
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkImagingCore import vtkImageMapToColors, vtkImageReslice
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkPolyDataMapper,
    vtkRenderer,
    vtkTextActor,
)

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.segmentation import Segment, Segmentation
from medseg_gui.core.volume import Volume
from medseg_gui.rendering.imagedata import to_vtk_image, to_vtk_matrix
from medseg_gui.rendering.label_outline import LabelOutline
from medseg_gui.rendering.overlay import label_lookup_table, probability_lookup_table
from medseg_gui.rendering.scale_bar import ScaleBar
from medseg_gui.rendering.slice_layer import SliceLayer
from medseg_gui.rendering.slicing import Orientation, SliceLayout, edge_letters

CROSSHAIR_COLOR = {Orientation.AXIAL: (1.0, 0.3, 0.3), Orientation.CORONAL: (0.3, 1.0, 0.3),
                   Orientation.SAGITTAL: (0.4, 0.6, 1.0)}
# Actors above the image, towards the camera (mm in view Z); parallel projection ignores it.
# The probability lies under the labels, so that a segment's outline stays crisp on top of it.
_PROBABILITY_Z, _LABEL_Z, _CROSS_Z, _CAMERA_Z = 0.25, 0.5, 1.0, 1000.0


class SliceView:
    """Pipeline, camera and state of one orientation.

    Parameters
    ----------
    orientation
        Which plane the view shows.
    """

    def __init__(self, orientation: Orientation) -> None:
        self.orientation = Orientation(orientation)
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(0.0, 0.0, 0.0)
        self.renderer.UseOITOff()  # flat layers in a fixed order: see the module docstring
        self.volume: Volume | None = None
        self.layout: SliceLayout | None = None
        self.slice_index = 0
        self.zoom = 1.0
        self.pan = (0.0, 0.0)
        self._labels_geometry: Geometry | None = None
        self._probability_geometry: Geometry | None = None
        self._crosshair = np.zeros(3)

        self._reslice = self._make_reslice(linear=True)
        # Window/level as vtkImageActor maps it (a linear vtkScalarsToColors ramp over
        # level -/+ width / 2, rounded), so the grey values are the same as before.
        self._grey = vtkScalarsToColors()
        self._window_width, self._window_center = 400.0, 40.0
        self._image_colors = vtkImageMapToColors()
        self._image_colors.SetOutputFormatToLuminance()
        self._image_colors.SetLookupTable(self._grey)
        self._image_colors.SetInputConnection(self._reslice.GetOutputPort())
        self._image = SliceLayer(0.0, linear=True)
        self._image.set_input_connection(self._image_colors.GetOutputPort())

        self._label_reslice = self._make_reslice(linear=False)
        self._label_colors = vtkImageMapToColors()
        self._label_colors.SetOutputFormatToRGBA()
        # Fill or outline (see set_label_style): the outline works on the resliced 2D slice
        # and sits between the reslice and the colours only while it is on.
        self._label_outline = LabelOutline()
        self._label_outline.SetInputConnection(self._label_reslice.GetOutputPort())
        self._label_colors.SetInputConnection(self._label_reslice.GetOutputPort())
        self.label_opacity = 0.45
        self._labels = SliceLayer(_LABEL_Z, linear=False, opacity=self.label_opacity, crop=True)
        self._labels.set_input_connection(self._label_colors.GetOutputPort())

        # Nearest-neighbour: the image holds float16 bit patterns (probability_lookup_table).
        self._probability_reslice = self._make_reslice(linear=False)
        self._probability_colors = vtkImageMapToColors()
        self._probability_colors.SetOutputFormatToRGBA()
        self._probability_colors.SetLookupTable(probability_lookup_table())
        self._probability_colors.SetInputConnection(self._probability_reslice.GetOutputPort())
        self.probability_opacity = 0.5
        self._probability = SliceLayer(_PROBABILITY_Z, linear=False,
                                       opacity=self.probability_opacity, crop=True)
        self._probability.set_input_connection(self._probability_colors.GetOutputPort())
        # The reslice matrix last given to each reslice: a plane that did not move is not
        # given a new one, so its reslice, colour mapping and texture upload do not run again.
        self._axes: dict[int, npt.NDArray[np.float64]] = {}

        self._cross_points = vtkPoints()
        self._cross_points.SetNumberOfPoints(4)
        lines = vtkCellArray()
        lines.InsertNextCell(2, [0, 1])
        lines.InsertNextCell(2, [2, 3])
        self._cross_poly = vtkPolyData()
        self._cross_poly.SetPoints(self._cross_points)
        self._cross_poly.SetLines(lines)
        mapper = vtkPolyDataMapper()
        mapper.SetInputData(self._cross_poly)
        self._cross = vtkActor()
        self._cross.SetMapper(mapper)
        self._cross.GetProperty().SetColor(*CROSSHAIR_COLOR[self.orientation])
        self._cross.GetProperty().SetOpacity(0.7)
        self._cross.VisibilityOff()

        self._letters = self._make_letters()
        self._info = vtkTextActor()
        self._info.GetTextProperty().SetFontSize(13)
        self._info.GetTextProperty().SetColor(0.9, 0.9, 0.6)
        # Top-left corner: the edge letters sit at the middle of each edge, and at the bottom
        # a narrow view would put the info text under the bottom letter.
        self._info.GetTextProperty().SetVerticalJustificationToTop()
        self._info.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
        self._info.SetPosition(0.01, 0.99)
        # Drawn in this order (translucent props are not sorted): CT, probability, labels,
        # crosshair, then the text.
        for prop in (self._image.actor, self._probability.actor, self._labels.actor,
                     self._cross, self._info, *self._letters):
            self.renderer.AddViewProp(prop)
        self.scale_bar = ScaleBar()
        self.scale_bar.add_to(self.renderer)
        self.scale_bar.set_visible(False)
        cam = self.renderer.GetActiveCamera()
        cam.ParallelProjectionOn()
        self.renderer.AddObserver(vtkCommand.StartEvent, self._before_render)

    # -- construction helpers -------------------------------------------------------------
    @staticmethod
    def _make_reslice(*, linear: bool) -> vtkImageReslice:
        r = vtkImageReslice()
        r.SetOutputDimensionality(2)
        if linear:
            r.SetInterpolationModeToLinear()
        else:
            r.SetInterpolationModeToNearestNeighbor()
        return r

    def _make_letters(self) -> list[vtkTextActor]:
        spots = {"left": (0.01, 0.5, 0, 1), "right": (0.99, 0.5, 2, 1),
                 "top": (0.5, 0.99, 1, 2), "bottom": (0.5, 0.01, 1, 0)}
        actors = []
        for edge, letter in edge_letters(self.orientation).items():
            x, y, hjust, vjust = spots[edge]
            t = vtkTextActor()
            t.SetInput(letter)
            prop = t.GetTextProperty()
            prop.SetFontSize(18)
            prop.BoldOn()
            prop.SetColor(1.0, 0.85, 0.2)
            prop.SetJustification(hjust)
            prop.SetVerticalJustification(vjust)
            t.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
            t.SetPosition(x, y)
            actors.append(t)
        return actors

    # -- data -----------------------------------------------------------------------------
    def set_volume(self, volume: Volume) -> None:
        """Show ``volume``; the slice goes to the middle and the camera is reset."""
        self.volume = volume
        self.layout = SliceLayout.of(volume.geometry, self.orientation)
        self._reslice.SetInputData(to_vtk_image(volume.array, volume.geometry,
                                                with_direction=False))
        self._reslice.SetBackgroundLevel(float(np.min(volume.array)))
        self._configure_output(self._reslice)
        self._configure_output(self._label_reslice)
        self._configure_output(self._probability_reslice)
        self._axes.clear()
        bounds = self.layout.world_bounds()
        for layer in (self._image, self._labels, self._probability):
            layer.set_bounds(bounds)
        self.zoom, self.pan = 1.0, (0.0, 0.0)
        self._image.set_visible(True)
        self._cross.VisibilityOn()
        self.set_crosshair(volume_center(volume.geometry))

    def set_labels(self, segmentation: Segmentation | None,
                   opacity: float | None = None) -> None:
        """Overlay a label map (on any grid) or remove it with ``None``.

        ``opacity`` defaults to :attr:`label_opacity` (see :meth:`set_label_style`).
        """
        if segmentation is None or self.volume is None:
            self._labels_geometry = None
            self._labels.set_visible(False)
            return
        self._labels_geometry = segmentation.geometry
        self._label_reslice.SetInputData(to_vtk_image(segmentation.labelmap,
                                                      segmentation.geometry, with_direction=False))
        max_label = max([int(segmentation.labelmap.max())] + [s.label for s in
                                                             segmentation.segments])
        self._label_colors.SetLookupTable(label_lookup_table(segmentation.segments, max_label))
        self._labels.set_opacity(self.label_opacity if opacity is None else opacity)
        self._labels.set_visible(True)
        self._update_slice()

    def set_probability(self, probability: npt.NDArray[np.float16] | None,
                        geometry: Geometry | None = None) -> None:
        """Overlay the AI's probability (float16 on ``geometry``) or remove it with ``None``.

        The array is shared with VTK, not copied; values outside ``[0, 1]`` are transparent.
        """
        if probability is None or geometry is None or self.volume is None:
            self._probability_geometry = None
            self._probability.set_visible(False)
            self._probability_reslice.SetInputData(None)  # let the map's memory go
            return
        if probability.dtype != np.float16:
            raise ValueError(f"the probability overlay takes float16, got {probability.dtype}")
        self._probability_geometry = geometry
        self._probability_reslice.SetInputData(to_vtk_image(
            probability.view(np.uint16), geometry, with_direction=False))
        self._probability.set_visible(True)
        self._update_slice()

    @property
    def probability_shown(self) -> bool:
        return self._probability_geometry is not None

    def set_probability_opacity(self, opacity: float) -> None:
        """The probability layer's opacity (0..1), independent of the labels'."""
        self.probability_opacity = float(np.clip(opacity, 0.0, 1.0))
        self._probability.set_opacity(self.probability_opacity)

    def set_label_style(self, opacity: float, outline: bool) -> None:
        """Overlay opacity (0..1) for every segment, and fill (False) or outline (True)."""
        self.label_opacity = float(np.clip(opacity, 0.0, 1.0))
        self._labels.set_opacity(self.label_opacity)
        self._label_outline.set_outline(outline)
        # A filled overlay bypasses the (Python) outline step: one call less per label frame.
        source = self._label_outline if outline else self._label_reslice
        self._label_colors.SetInputConnection(source.GetOutputPort())

    @property
    def label_outline(self) -> bool:
        return bool(self._label_outline.outline)

    def set_window_level(self, width: float, level: float) -> None:
        self._window_width, self._window_center = max(float(width), 1e-6), float(level)
        half = self._window_width / 2
        self._grey.SetRange(self._window_center - half, self._window_center + half)
        self._update_info()

    @property
    def window_level(self) -> tuple[float, float]:
        return self._window_width, self._window_center

    def _configure_output(self, reslice: vtkImageReslice) -> None:
        assert self.layout is not None
        (x0, y0), (sx, sy), (nx, ny) = self.layout.origin, self.layout.spacing, self.layout.size
        reslice.SetOutputOrigin(x0, y0, 0.0)
        reslice.SetOutputSpacing(sx, sy, 1.0)
        reslice.SetOutputExtent(0, nx - 1, 0, ny - 1, 0, 0)

    # -- slice and crosshair ----------------------------------------------------------------
    def set_crosshair(self, world: npt.ArrayLike) -> None:
        """Move to the slice through LPS point ``world`` and draw the crosshair there."""
        if self.layout is None:
            return
        self._crosshair = np.asarray(world, dtype=np.float64)
        x, y, z = self.layout.world_to_view(self._crosshair)
        self.slice_index = self.layout.slice_index(float(z))
        xmin, xmax, ymin, ymax = self.layout.world_bounds()
        for n, p in enumerate([(xmin, y), (xmax, y), (x, ymin), (x, ymax)]):
            self._cross_points.SetPoint(n, p[0], p[1], _CROSS_Z)
        self._cross_points.Modified()
        self._update_slice()

    def step_world(self, delta: int) -> npt.NDArray[np.float64] | None:
        """The crosshair moved by ``delta`` slices along this view's normal (clamped)."""
        if self.layout is None:
            return None
        index = int(np.clip(self.slice_index + delta, 0, self.layout.n_slices - 1))
        x, y, _ = self.layout.world_to_view(self._crosshair)
        return self.layout.view_to_world([x, y, self.layout.slice_z(index)])

    def _update_slice(self) -> None:
        if self.layout is None or self.volume is None:
            return
        self._place_plane(self._reslice, self.volume.geometry)
        if self._labels_geometry is not None:
            self._place_plane(self._label_reslice, self._labels_geometry)
        if self._probability_geometry is not None:
            self._place_plane(self._probability_reslice, self._probability_geometry)
        self._update_info()

    def _place_plane(self, reslice: vtkImageReslice, geometry: Geometry) -> None:
        """Give ``reslice`` the current slice's matrix, unless it already has it."""
        assert self.layout is not None
        m = self.layout.reslice_matrix(geometry, self.slice_index)
        last = self._axes.get(id(reslice))
        if last is not None and np.array_equal(last, m):
            return
        self._axes[id(reslice)] = m
        reslice.SetResliceAxes(to_vtk_matrix(m))

    def _update_info(self) -> None:
        if self.layout is None:
            self._info.SetInput("")
            return
        w, lv = self.window_level
        # Two short lines keep clear of the letter centred on the top edge.
        self._info.SetInput(f"{self.orientation.value.capitalize()} "
                            f"{self.slice_index + 1}/{self.layout.n_slices}\n"
                            f"W {w:.0f} L {lv:.0f}")

    # -- camera and picking -------------------------------------------------------------------
    def _before_render(self, *_: Any) -> None:
        self._place_camera()
        self._labels.prepare()
        self._probability.prepare()

    def _place_camera(self, *_: Any) -> None:
        """Fit the slice to the viewport (times ``zoom``) before every render."""
        if self.layout is None:
            return
        xmin, xmax, ymin, ymax = self.layout.world_bounds()
        width, height = self.renderer.GetSize()
        aspect = max(width, 1) / max(height, 1)
        scale = max((ymax - ymin) / 2, (xmax - xmin) / (2 * aspect)) * 1.02 / self.zoom
        cx = (xmin + xmax) / 2 + self.pan[0]
        cy = (ymin + ymax) / 2 + self.pan[1]
        cam = self.renderer.GetActiveCamera()
        cam.SetFocalPoint(cx, cy, 0.0)
        cam.SetPosition(cx, cy, _CAMERA_Z)
        cam.SetViewUp(0.0, 1.0, 0.0)
        cam.SetParallelScale(scale)
        cam.SetClippingRange(_CAMERA_Z / 2, _CAMERA_Z * 2)
        # The parallel scale is half the view's height in mm.
        self.scale_bar.update(2 * scale / max(height, 1), width)
        self.scale_bar.set_visible(True)

    def display_to_world(self, x: float, y: float) -> npt.NDArray[np.float64] | None:
        """The LPS point (on the current slice) under display pixel ``(x, y)``.

        ``(x, y)`` are VTK display coordinates: pixels of the render window, origin at the
        bottom left. ``None`` when nothing is shown.
        """
        if self.layout is None:
            return None
        self._place_camera()
        self.renderer.SetDisplayPoint(float(x), float(y), 0.0)
        self.renderer.DisplayToWorld()
        wx, wy, _, w = self.renderer.GetWorldPoint()
        if w:
            wx, wy = wx / w, wy / w
        return self.layout.view_to_world([wx, wy, self.layout.slice_z(self.slice_index)])

    def world_to_display(self, world: npt.ArrayLike) -> tuple[float, float] | None:
        """Display pixel ``(x, y)`` (origin bottom left) of an LPS point's in-plane position."""
        if self.layout is None:
            return None
        self._place_camera()
        x, y, _ = self.layout.world_to_view(world)
        self.renderer.SetWorldPoint(float(x), float(y), 0.0, 1.0)
        self.renderer.WorldToDisplay()
        dx, dy, _ = self.renderer.GetDisplayPoint()
        return float(dx), float(dy)

    # -- editing feedback (used by the editing tools) ------------------------------------------
    def labels_modified(self) -> None:
        """The label map was edited in place: the next render reslices it again.

        The label image shares the label map's buffer, so marking it modified is all it takes;
        only the current slice is resliced and re-uploaded.
        """
        image = self._label_reslice.GetInput()
        if image is not None and self._labels_geometry is not None:
            image.Modified()

    def set_label_colors(self, segments: list[Segment], hidden: Iterable[int] = ()) -> None:
        """New segment colours (and hidden labels) without touching the label image."""
        if self._labels_geometry is None:
            return
        lut = self._label_colors.GetLookupTable()
        n = lut.GetNumberOfTableValues() - 1 if lut is not None else 0
        max_label = max([n] + [s.label for s in segments])
        self._label_colors.SetLookupTable(label_lookup_table(segments, max_label, hidden))


def volume_center(geometry: Geometry) -> npt.NDArray[np.float64]:
    """LPS position of the centre voxel of a grid (the first crosshair position)."""
    return geometry.index_to_world([n // 2 for n in geometry.size_ijk])


def line_overlay(view: SliceView) -> tuple[vtkPolyDataMapper, vtkActor]:
    """An unlit, unpickable 2 px line actor in ``view``, coloured per cell (the prompt markers,
    the RECIST axes): the caller draws by giving the mapper new polydata."""
    mapper = vtkPolyDataMapper()
    mapper.SetInputData(vtkPolyData())
    mapper.SetScalarModeToUseCellData()
    actor = vtkActor()
    actor.SetMapper(mapper)
    actor.GetProperty().SetLineWidth(2.0)
    actor.GetProperty().LightingOff()
    actor.PickableOff()
    view.renderer.AddViewProp(actor)
    return mapper, actor
