"""One 2D image layer of a slice view, drawn as an unlit textured quad.

Why not ``vtkImageActor``: its quad goes through VTK's lit polygon shader, and on software
OpenGL (Mesa llvmpipe) a slice view is bound by how many pixels it shades, not by reslicing.
Measured on the 2-core test machine, a 700 x 700 view spent about 12 ms shading one lit image
quad and about 8 ms shading the same quad unlit; a slice view draws two or three such layers
(CT, labels, probability). The texture's pixels are those ``vtkImageActor`` would show: the
colours come from the pipeline in front (window/level or a lookup table, both on the CPU, as
``vtkImageActor`` does too), and the quad spans the outer pixel edges (the image actor's
``BorderOn``) with the texture clamped at its edges.

An overlay (labels, probability) is mostly transparent, and a transparent pixel costs as much
to shade as an opaque one. A layer made with ``crop=True`` therefore draws only the bounding
box of its visible (alpha > 0) pixels: :meth:`SliceLayer.prepare`, called before each frame,
cuts that box out of the pipeline's RGBA output when it changed and uploads only the box. For a
tumour that is a few per cent of the slice; an empty slice draws nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkFiltersSources import vtkPlaneSource
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper, vtkTexture


class SliceLayer:
    """A textured quad at height ``z`` (view mm) showing a 2D ``vtkImageData``.

    Parameters
    ----------
    z
        Height above the slice (towards the camera), which orders the layers.
    linear
        Linear texture interpolation (the CT) or nearest neighbour (labels, probability).
    opacity
        The actor's opacity (0..1); the texture's own alpha multiplies it.
    crop
        Draw only the box around the pixels whose alpha is not zero (RGBA input only).
    """

    def __init__(self, z: float, *, linear: bool, opacity: float = 1.0,
                 crop: bool = False) -> None:
        self.z = float(z)
        self.crop = bool(crop)
        self._source: Any = None
        self._cropped_from = -1  # MTime of the source output the crop was cut from
        self._full: tuple[float, float, float, float] | None = None
        self.texture = vtkTexture()
        self.texture.SetInterpolate(bool(linear))
        self.texture.RepeatOff()
        self.texture.EdgeClampOn()
        self.texture.SetColorModeToDirectScalars()  # unsigned char in, no lookup on upload
        self._plane = vtkPlaneSource()
        mapper = vtkPolyDataMapper()
        mapper.SetInputConnection(self._plane.GetOutputPort())
        mapper.ScalarVisibilityOff()
        self.actor = vtkActor()
        self.actor.SetMapper(mapper)
        self.actor.SetTexture(self.texture)
        prop = self.actor.GetProperty()
        prop.LightingOff()  # the point of this class: see the module docstring
        prop.SetColor(1.0, 1.0, 1.0)
        prop.SetOpacity(float(opacity))
        self.actor.PickableOff()
        self.actor.VisibilityOff()
        self._bounds: tuple[float, float, float, float] | None = None

    def set_input_connection(self, port: Any) -> None:
        """Take the texture from an algorithm's output (unsigned char, 1, 3 or 4 components)."""
        if self.crop:
            self._source = port.GetProducer()
            self._cropped_from = -1
        else:
            self.texture.SetInputConnection(port)

    def set_bounds(self, bounds: tuple[float, float, float, float]) -> None:
        """The whole image's outer pixel edges ``(xmin, xmax, ymin, ymax)`` in view mm."""
        self._full = bounds
        self._cropped_from = -1
        if not self.crop:
            self._place(bounds)

    def prepare(self) -> None:
        """Bring a cropped layer's texture up to date with its pipeline (call before a render).

        Runs the pipeline in front of it (as a render would); cuts and uploads a new box only
        when that pipeline's output changed.
        """
        if not self.crop or self._source is None or self._full is None or not self.visible:
            return
        self._source.Update()
        image = self._source.GetOutput()
        if image.GetMTime() == self._cropped_from:
            return
        self._cropped_from = image.GetMTime()
        nx, ny, _ = image.GetDimensions()
        scalars = image.GetPointData().GetScalars()
        if scalars is None or scalars.GetNumberOfComponents() != 4 or nx * ny == 0:
            return
        rgba = vtk_to_numpy(scalars).reshape(ny, nx, 4)  # type: ignore[no-untyped-call]
        seen = rgba[:, :, 3] != 0
        rows, cols = np.flatnonzero(seen.any(axis=1)), np.flatnonzero(seen.any(axis=0))
        if rows.size == 0:  # nothing to show: one transparent pixel in a corner
            r0 = r1 = c0 = c1 = 0
            box = np.zeros((1, 1, 4), np.uint8)
        else:
            r0, r1, c0, c1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
            box = np.ascontiguousarray(rgba[r0:r1 + 1, c0:c1 + 1])
        cut = vtkImageData()
        cut.SetDimensions(c1 - c0 + 1, r1 - r0 + 1, 1)
        cut.GetPointData().SetScalars(
            numpy_to_vtk(box.reshape(-1, 4), deep=True))  # type: ignore[no-untyped-call]
        self.texture.SetInputData(cut)
        xmin, xmax, ymin, ymax = self._full
        sx, sy = (xmax - xmin) / nx, (ymax - ymin) / ny
        self._place((xmin + c0 * sx, xmin + (c1 + 1) * sx, ymin + r0 * sy, ymin + (r1 + 1) * sy))

    def _place(self, bounds: tuple[float, float, float, float]) -> None:
        if bounds == self._bounds:
            return
        self._bounds = bounds
        xmin, xmax, ymin, ymax = bounds
        self._plane.SetOrigin(xmin, ymin, self.z)
        self._plane.SetPoint1(xmax, ymin, self.z)
        self._plane.SetPoint2(xmin, ymax, self.z)

    def set_opacity(self, opacity: float) -> None:
        self.actor.GetProperty().SetOpacity(float(opacity))

    @property
    def opacity(self) -> float:
        return float(self.actor.GetProperty().GetOpacity())

    def set_visible(self, visible: bool) -> None:
        self.actor.SetVisibility(bool(visible))

    @property
    def visible(self) -> bool:
        return bool(self.actor.GetVisibility())
