"""One slice view as a VTK scene (a ``vtkRenderer``, no widget).

Layers, bottom to top: the CT (window/level grey), the AI's probability (optional, off by
default, its own colour table and opacity), the labels (fill or outline), then crosshair lines
and orientation letters. Each layer's pixels come from a
:class:`~medseg_gui.rendering.slice_source.PlaneSampler` (a numpy view of the array for
axis-aligned grids, ``vtkImageReslice`` otherwise), are coloured through a code table on the
CPU and drawn by a :class:`~medseg_gui.rendering.slice_layer.SliceLayer`: unlit textured quads
that skip empty tiles, because on software OpenGL the frame time is the pixels shaded.

The renderer's world coordinates are the view coordinates of :mod:`medseg_gui.rendering.slicing`
with the current slice at ``Z = 0``; the camera looks down ``-Z`` with ``+Y`` up, so the
radiological convention comes from the :class:`~medseg_gui.rendering.slicing.SliceLayout`,
never from the camera.

What a frame costs: a layer is sampled, coloured and uploaded again only when what it shows
changed (its slice, its data, its colours), checked before each render; moving the crosshair
within the plane only moves the crosshair lines. An edited label map uploads only the box of
its visible pixels on the current slice. Order-independent translucency is off: the layers are
flat, drawn back to front in a fixed order, and VTK's OIT pass added several full-window passes
per frame (about half the frame on llvmpipe).
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
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkPolyDataMapper,
    vtkRenderer,
    vtkTextActor,
)

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.segmentation import Segment, Segmentation
from medseg_gui.core.volume import Volume
from medseg_gui.rendering.label_outline import outline_mask
from medseg_gui.rendering.overlay import label_colors, probability_colors
from medseg_gui.rendering.scale_bar import ScaleBar
from medseg_gui.rendering.slice_layer import SliceLayer
from medseg_gui.rendering.slice_source import (
    PlaneSampler,
    apply_table,
    code_table,
    map_grey,
    nonzero_box,
)
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
        self._crosshair = np.zeros(3)

        # Window/level as vtkImageActor maps it (a linear vtkScalarsToColors ramp over
        # level -/+ width / 2, rounded), so the grey values are the same as before.
        self._grey = vtkScalarsToColors()
        self._window_width, self._window_center = 400.0, 40.0
        self._grey_table: npt.NDArray[np.uint8] | None = None  # for the volume's dtype
        self._image_source = PlaneSampler(linear=True)
        self._image = SliceLayer(0.0, linear=True)

        self._label_source = PlaneSampler(linear=False)
        self._label_table = label_colors(())
        self._outline = False  # fill or outline (set_label_style)
        self.label_opacity = 0.45
        self._labels = SliceLayer(_LABEL_Z, linear=False, opacity=self.label_opacity)

        # Nearest-neighbour: the map holds float16 bit patterns (probability_colors).
        self._probability_source = PlaneSampler(linear=False)
        self._probability_table: npt.NDArray[np.uint8] | None = None  # made when first shown
        self.probability_opacity = 0.5
        self._probability = SliceLayer(_PROBABILITY_Z, linear=False,
                                       opacity=self.probability_opacity)
        # What each layer was drawn from: (slice, data/colour version). A layer is sampled,
        # coloured and uploaded again before a frame only when this changed.
        self._versions = {"image": 0, "labels": 0, "probability": 0}
        self._drawn: dict[str, tuple[int, int]] = {}

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
        self._image_source.set_data(volume.array, volume.geometry,
                                    background=float(np.min(volume.array)))
        self._grey_table = None
        self._changed("image")
        for layer in (self._image, self._labels, self._probability):
            layer.set_grid(self.layout.world_bounds(), self.layout.size)
        self.zoom, self.pan = 1.0, (0.0, 0.0)
        self._cross.VisibilityOn()
        self.set_crosshair(volume_center(volume.geometry))

    def set_labels(self, segmentation: Segmentation | None,
                   opacity: float | None = None) -> None:
        """Overlay a label map (on any grid) or remove it with ``None``.

        The label map is shared, not copied: after editing it in place, call
        :meth:`labels_modified`. ``opacity`` defaults to :attr:`label_opacity` (see
        :meth:`set_label_style`).
        """
        if segmentation is None or self.volume is None:
            self._label_source.set_data(None, None)
            self._labels.hide()
            return
        self._label_source.set_data(segmentation.labelmap, segmentation.geometry)
        self._label_table = label_colors(segmentation.segments,
                                         codes=256 ** segmentation.labelmap.dtype.itemsize)
        self._labels.set_opacity(self.label_opacity if opacity is None else opacity)
        self._changed("labels")

    def set_probability(self, probability: npt.NDArray[np.float16] | None,
                        geometry: Geometry | None = None) -> None:
        """Overlay the AI's probability (float16 on ``geometry``) or remove it with ``None``.

        The array is shared, not copied; values outside ``[0, 1]`` are transparent.
        """
        if probability is None or geometry is None or self.volume is None:
            self._probability_source.set_data(None, None)  # let the map's memory go
            self._probability.hide()
            return
        if probability.dtype != np.float16:
            raise ValueError(f"the probability overlay takes float16, got {probability.dtype}")
        if self._probability_table is None:
            self._probability_table = probability_colors()
        self._probability_source.set_data(probability.view(np.uint16), geometry)
        self._changed("probability")

    @property
    def probability_shown(self) -> bool:
        return self._probability_source.array is not None

    def set_probability_opacity(self, opacity: float) -> None:
        """The probability layer's opacity (0..1), independent of the labels'."""
        self.probability_opacity = float(np.clip(opacity, 0.0, 1.0))
        self._probability.set_opacity(self.probability_opacity)

    def set_label_style(self, opacity: float, outline: bool) -> None:
        """Overlay opacity (0..1) for every segment, and fill (False) or outline (True)."""
        self.label_opacity = float(np.clip(opacity, 0.0, 1.0))
        self._labels.set_opacity(self.label_opacity)
        if bool(outline) != self._outline:
            self._outline = bool(outline)
            self._changed("labels")

    @property
    def label_outline(self) -> bool:
        return self._outline

    def set_window_level(self, width: float, level: float) -> None:
        self._window_width, self._window_center = max(float(width), 1e-6), float(level)
        half = self._window_width / 2
        self._grey.SetRange(self._window_center - half, self._window_center + half)
        self._grey_table = None
        self._changed("image")
        self._update_info()

    @property
    def window_level(self) -> tuple[float, float]:
        return self._window_width, self._window_center

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
        self._update_info()

    def step_world(self, delta: int) -> npt.NDArray[np.float64] | None:
        """The crosshair moved by ``delta`` slices along this view's normal (clamped)."""
        if self.layout is None:
            return None
        index = int(np.clip(self.slice_index + delta, 0, self.layout.n_slices - 1))
        x, y, _ = self.layout.world_to_view(self._crosshair)
        return self.layout.view_to_world([x, y, self.layout.slice_z(index)])

    # -- the layers' pixels -------------------------------------------------------------------
    def _changed(self, layer: str) -> None:
        """What ``layer`` shows changed: it is drawn again before the next frame."""
        self._versions[layer] += 1

    def _refresh_layers(self) -> None:
        """Sample, colour and upload each layer whose slice or data changed since it was drawn."""
        if self.layout is None:
            return
        for name, draw in (("image", self._draw_image), ("labels", self._draw_labels),
                           ("probability", self._draw_probability)):
            key = (self.slice_index, self._versions[name])
            if self._drawn.get(name) != key:
                self._drawn[name] = key
                draw()

    def _draw_image(self) -> None:
        assert self.layout is not None
        plane = self._image_source.plane(self.layout, self.slice_index)
        if plane is None:
            self._image.hide()
            return
        if self._grey_table is None:
            self._grey_table = code_table(self._grey, plane.dtype)
        grey = (apply_table(self._grey_table, plane) if self._grey_table is not None
                else map_grey(self._grey, plane))
        self._image.show(grey)

    def _draw_labels(self) -> None:
        assert self.layout is not None
        plane = self._label_source.plane(self.layout, self.slice_index)
        box = None if plane is None else nonzero_box(plane)
        if plane is None or box is None:
            self._labels.hide()
            return
        r0, r1, c0, c1 = box
        labels = plane[r0:r1, c0:c1]
        if self._outline:
            # The box holds every non-zero pixel, so its edge is a segment border as well:
            # the outline of the box is the outline of the whole slice.
            labels = np.where(outline_mask(labels), labels, 0)
        self._labels.show(apply_table(self._label_table, labels), r0, c0)

    def _draw_probability(self) -> None:
        assert self.layout is not None
        plane = self._probability_source.plane(self.layout, self.slice_index)
        table = self._probability_table
        box = None if plane is None or table is None else nonzero_box(table[plane, 3])
        if plane is None or table is None or box is None:
            self._probability.hide()
            return
        r0, r1, c0, c1 = box
        self._probability.show(apply_table(table, plane[r0:r1, c0:c1]), r0, c0)

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
        self._refresh_layers()

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
        """The label map was edited in place: the next render draws its slice again.

        The label layer shares the label map's buffer; only the current slice's box of visible
        labels is coloured and re-uploaded.
        """
        if self._label_source.array is not None:
            self._changed("labels")

    def set_label_colors(self, segments: list[Segment], hidden: Iterable[int] = ()) -> None:
        """New segment colours (and hidden labels) without touching the label image."""
        array = self._label_source.array
        if array is None:
            return
        self._label_table = label_colors(segments, hidden, codes=256 ** array.dtype.itemsize)
        self._changed("labels")


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
