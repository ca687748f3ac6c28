"""The 3D scene (a ``vtkRenderer``, no widget): volume rendering, segment surfaces, crosshair.

The CT goes to a ``vtkGPUVolumeRayCastMapper`` (OpenGL ray casting; Mesa's llvmpipe runs it
too, so it works without a GPU, only slower) with a transfer function from
``resources/presets/volume_render.json``. Like the slice views, the image is given to VTK
without a direction (origin 0, coordinates ``spacing * ijk``); the prop's user
matrix maps that frame to LPS, so the scene's world coordinates are LPS millimetres for any
acquisition, and surfaces and the crosshair share them.

Level of detail: :meth:`Scene3D.set_interactive` switches between interactive frames and the
full-quality still frame drawn once the user lets go. While interacting, each frame's time picks
the next frame's ray grid, ray step and shading from a ladder
(:class:`~medseg_gui.rendering.level_of_detail.FrameRateLadder`, aiming under
``1 / INTERACTIVE_RATE``), and the window's multisampling is off (on llvmpipe 8x multisampling
alone cost about 50 ms a frame in a 600 x 500 view); the still frame restores both. The mapper
is chosen directly rather than through ``vtkSmartVolumeMapper`` so that these settings are ours
and not reset by the smart mapper on every render.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

# Register the OpenGL back-ends (rendering and volume rendering) VTK needs to draw at all.
import vtkmodules.vtkRenderingOpenGL2
import vtkmodules.vtkRenderingVolumeOpenGL2  # noqa: F401
from vtkmodules.vtkCommonCore import vtkCommand, vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPiecewiseFunction, vtkPolyData
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkColorTransferFunction,
    vtkPolyDataMapper,
    vtkRenderer,
    vtkRenderWindow,
    vtkVolume,
    vtkVolumeProperty,
)
from vtkmodules.vtkRenderingVolumeOpenGL2 import vtkOpenGLGPUVolumeRayCastMapper

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.volume import Volume
from medseg_gui.rendering.imagedata import to_vtk_image, to_vtk_matrix
from medseg_gui.rendering.level_of_detail import FrameRateLadder, Quality
from medseg_gui.rendering.surfaces import Surface, grid_to_world_matrix
from medseg_gui.resources import RESOURCES

PRESETS_FILE = RESOURCES / "presets" / "volume_render.json"
# Desired frames per second while interacting and for the still frame (VTK's own defaults
# for interactors are 15 and 0.0001).
INTERACTIVE_RATE = 10.0
STILL_RATE = 0.0001


@dataclass(frozen=True)
class VolumePreset:
    """A CT transfer function: opacity ``[(HU, alpha)]``, colour ``[(HU, r, g, b)]``."""

    name: str
    opacity: tuple[tuple[float, float], ...]
    color: tuple[tuple[float, float, float, float], ...]
    shade: bool = True
    ambient: float = 0.2
    diffuse: float = 0.9
    specular: float = 0.1
    specular_power: float = 10.0


def load_volume_presets(path: str | Path = PRESETS_FILE) -> list[VolumePreset]:
    """The presets of a JSON file ``{"presets": [{"name", "opacity", "color", ...}]}``."""
    data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    out = []
    for p in data["presets"]:
        opacity = tuple((float(a), float(b)) for a, b in p["opacity"])
        color = tuple((float(h), float(r), float(g), float(b)) for h, r, g, b in p["color"])
        if not opacity or not color:
            raise ValueError(f"{path}: preset {p.get('name')!r} needs opacity and color points")
        out.append(VolumePreset(str(p["name"]), opacity, color, bool(p.get("shade", True)),
                                float(p.get("ambient", 0.2)), float(p.get("diffuse", 0.9)),
                                float(p.get("specular", 0.1)),
                                float(p.get("specular_power", 10.0))))
    return out


def volume_property(preset: VolumePreset) -> vtkVolumeProperty:
    """The ``vtkVolumeProperty`` of a preset (linear interpolation, shading as given)."""
    opacity = vtkPiecewiseFunction()
    for hu, alpha in preset.opacity:
        opacity.AddPoint(hu, alpha)
    color = vtkColorTransferFunction()
    for hu, r, g, b in preset.color:
        color.AddRGBPoint(hu, r, g, b)
    prop = vtkVolumeProperty()
    prop.SetScalarOpacity(opacity)
    prop.SetColor(color)
    prop.SetInterpolationTypeToLinear()
    prop.SetShade(int(preset.shade))
    prop.SetAmbient(preset.ambient)
    prop.SetDiffuse(preset.diffuse)
    prop.SetSpecular(preset.specular)
    prop.SetSpecularPower(preset.specular_power)
    return prop


class Scene3D:
    """Volume, surfaces and crosshair of one study in LPS world coordinates."""

    def __init__(self) -> None:
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(0.05, 0.05, 0.08)
        self.renderer.SetBackground2(0.22, 0.22, 0.28)
        self.renderer.GradientBackgroundOn()
        self.mapper = vtkOpenGLGPUVolumeRayCastMapper()
        self.mapper.SetBlendModeToComposite()
        self.mapper.AutoAdjustSampleDistancesOff()
        self.sample_distance = 1.0
        self.interactive = False
        self.lod = FrameRateLadder(1.0 / INTERACTIVE_RATE)
        self._still_multisamples: int | None = None
        self.renderer.AddObserver(vtkCommand.EndEvent, self._frame_done)
        self.volume_prop = vtkVolume()
        self.volume_prop.SetMapper(self.mapper)
        self.volume_prop.VisibilityOff()
        self.renderer.AddVolume(self.volume_prop)
        self.geometry: Geometry | None = None
        self.surface_actors: list[vtkActor] = []
        self.surfaces_visible = True
        self.preset: VolumePreset | None = None
        self._cross_points = vtkPoints()
        self._cross_points.SetNumberOfPoints(6)
        lines = vtkCellArray()
        for a in range(3):
            lines.InsertNextCell(2, [2 * a, 2 * a + 1])
        poly = vtkPolyData()
        poly.SetPoints(self._cross_points)
        poly.SetLines(lines)
        mapper = vtkPolyDataMapper()
        mapper.SetInputData(poly)
        self._cross = vtkActor()
        self._cross.SetMapper(mapper)
        self._cross.GetProperty().SetColor(1.0, 0.85, 0.2)
        self._cross.GetProperty().SetLineWidth(1.5)
        self._cross.VisibilityOff()
        self.renderer.AddActor(self._cross)

    # -- data ----------------------------------------------------------------------------------
    def set_volume(self, volume: Volume) -> None:
        """Render ``volume`` (shares its voxels; nothing is copied)."""
        self.geometry = volume.geometry
        image = to_vtk_image(volume.array, volume.geometry, with_direction=False)
        self.mapper.SetInputData(image)
        self.volume_prop.SetUserMatrix(to_vtk_matrix(grid_to_world_matrix(volume.geometry)))
        # One sample per finest voxel size along each ray for the still frame.
        self.sample_distance = float(min(volume.geometry.spacing))
        self.mapper.SetSampleDistance(self.sample_distance)
        self.volume_prop.VisibilityOn()
        self.set_surfaces([])
        self.reset_camera()

    def set_preset(self, preset: VolumePreset) -> None:
        self.preset = preset
        self.volume_prop.SetProperty(volume_property(preset))

    def set_volume_visible(self, visible: bool) -> None:
        self.volume_prop.SetVisibility(bool(visible) and self.geometry is not None)

    def set_surfaces(self, surfaces: list[Surface]) -> None:
        """Replace the segment surfaces (meshes in LPS mm)."""
        for actor in self.surface_actors:
            self.renderer.RemoveActor(actor)
        self.surface_actors = []
        for surface in surfaces:
            mapper = vtkPolyDataMapper()
            mapper.SetInputData(surface.polydata)
            mapper.ScalarVisibilityOff()
            actor = vtkActor()
            actor.SetMapper(mapper)
            prop = actor.GetProperty()
            prop.SetColor(*(c / 255.0 for c in surface.color))
            prop.SetSpecular(0.3)
            prop.SetSpecularPower(20)
            actor.SetVisibility(self.surfaces_visible)
            self.renderer.AddActor(actor)
            self.surface_actors.append(actor)

    def set_surfaces_visible(self, visible: bool) -> None:
        self.surfaces_visible = bool(visible)
        for actor in self.surface_actors:
            actor.SetVisibility(self.surfaces_visible)

    def set_crosshair(self, world: npt.ArrayLike) -> None:
        """Three lines through LPS point ``world``, spanning the volume's bounding box."""
        if self.geometry is None:
            return
        p = np.asarray(world, dtype=np.float64)
        lo, hi = self.world_bounds()
        for a in range(3):
            start, end = p.copy(), p.copy()
            start[a], end[a] = lo[a], hi[a]
            self._cross_points.SetPoint(2 * a, *start)
            self._cross_points.SetPoint(2 * a + 1, *end)
        self._cross_points.Modified()
        self._cross.VisibilityOn()

    # -- camera and level of detail --------------------------------------------------------------
    def world_bounds(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Axis-aligned LPS box around the volume's voxel centres."""
        assert self.geometry is not None
        size = self.geometry.size_ijk
        corners = np.array([[a, b, c] for a in (0, size[0] - 1) for b in (0, size[1] - 1)
                            for c in (0, size[2] - 1)], dtype=np.float64)
        world = self.geometry.index_to_world(corners)
        return world.min(axis=0), world.max(axis=0)

    def reset_camera(self) -> None:
        """Anterior view, head up: the patient's left on the screen's right (radiological)."""
        cam = self.renderer.GetActiveCamera()
        if self.geometry is None:
            return
        lo, hi = self.world_bounds()
        centre = (lo + hi) / 2
        cam.SetFocalPoint(*centre)
        cam.SetPosition(centre[0], centre[1] - 1000.0, centre[2])  # anterior is -y in LPS
        cam.SetViewUp(0.0, 0.0, 1.0)
        self.renderer.ResetCamera(lo[0], hi[0], lo[1], hi[1], lo[2], hi[2])
        cam.Zoom(1.3)  # ResetCamera fits the bounding sphere; the box itself is smaller
        self.renderer.ResetCameraClippingRange()

    def set_interactive(self, window: vtkRenderWindow, interactive: bool) -> None:
        """Ask for the coarse, fast frames of an interaction or the full-quality still frame."""
        was = self.interactive
        self.interactive = bool(interactive)
        if interactive:
            if not was:
                self._still_multisamples = int(window.GetMultiSamples())
            window.SetMultiSamples(0)
            self._apply(self.lod.quality)
            window.SetDesiredUpdateRate(INTERACTIVE_RATE)
        else:
            if was and self._still_multisamples is not None:
                window.SetMultiSamples(self._still_multisamples)
            self._still_multisamples = None
            m = self.mapper
            m.SetSampleDistance(self.sample_distance)
            m.SetImageSampleDistance(1.0)
            if self.preset is not None:
                self.volume_prop.GetProperty().SetShade(int(self.preset.shade))
            window.SetDesiredUpdateRate(STILL_RATE)

    def _apply(self, quality: Quality) -> None:
        self.mapper.SetImageSampleDistance(quality.image_sample)
        self.mapper.SetSampleDistance(quality.sample_factor * self.sample_distance)
        shade = quality.shade and (self.preset is None or self.preset.shade)
        self.volume_prop.GetProperty().SetShade(int(shade))

    def _frame_done(self, *_: Any) -> None:
        """After an interactive frame: its time sets the next frame's quality."""
        if self.interactive and self.volume_prop.GetVisibility():
            self._apply(self.lod.after_frame(self.renderer.GetLastRenderTimeInSeconds()))
