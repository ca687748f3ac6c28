"""numpy <-> ``vtkImageData`` conversion that keeps the LPS geometry.

VTK orders points with ``i`` fastest, which is exactly the C order of an array indexed
``[k, j, i]``, so the voxels are shared without reordering. ``vtkImageData`` carries a
direction matrix since VTK 9.1; :func:`to_vtk_image` sets it so that VTK world coordinates
are LPS millimetres, the same as :class:`~medseg_gui.core.geometry.Geometry`.

The slice pipeline asks for ``with_direction=False`` instead: it places the grid at origin 0
with identity direction (coordinates ``spacing * ijk``) and does the LPS mapping itself in the
reslice matrix, because ``vtkImageReslice`` propagates the input's direction matrix to its
output, which would make the output's coordinates depend on how the study was acquired.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkCommonMath import vtkMatrix4x4

from medseg_gui.core.geometry import Geometry


def to_vtk_image(
    array: npt.NDArray[Any], geometry: Geometry, *, with_direction: bool = True
) -> vtkImageData:
    """A ``vtkImageData`` holding ``array`` (indexed ``[k, j, i]``) on ``geometry``.

    Parameters
    ----------
    array
        Voxel values, shape ``geometry.shape``. It is made contiguous (copied only if needed);
        the returned image keeps a reference to the buffer.
    geometry
        Grid and LPS placement.
    with_direction
        True: origin, spacing and direction are set so VTK world = LPS mm. False: origin 0 and
        identity direction, so VTK coordinates are ``spacing * ijk`` (used by the reslicer).
    """
    if tuple(array.shape) != geometry.shape:
        raise ValueError(f"array shape {array.shape} does not match grid {geometry.shape}")
    flat = np.ascontiguousarray(array).reshape(-1)
    image = vtkImageData()
    image.SetDimensions(*geometry.size_ijk)
    image.SetSpacing(*geometry.spacing)
    if with_direction:
        image.SetOrigin(*geometry.origin)
        image.SetDirectionMatrix(*geometry.direction)
    scalars = numpy_to_vtk(flat, deep=False)  # type: ignore[no-untyped-call]
    scalars.SetName("scalars")
    image.GetPointData().SetScalars(scalars)
    # numpy_to_vtk(deep=False) does not own the buffer: keep it alive with the image.
    image._numpy_buffer = flat  # type: ignore[attr-defined]
    return image


def from_vtk_image(image: vtkImageData) -> tuple[npt.NDArray[Any], Geometry]:
    """The array (indexed ``[k, j, i]``, a copy) and geometry of a 3D ``vtkImageData``."""
    i, j, k = image.GetDimensions()
    flat = vtk_to_numpy(image.GetPointData().GetScalars())  # type: ignore[no-untyped-call]
    arr = flat.reshape(k, j, i).copy()
    m = image.GetDirectionMatrix()
    direction = tuple(m.GetElement(r, c) for r in range(3) for c in range(3))
    extent = image.GetExtent()
    geom = Geometry(shape=(k, j, i), spacing=image.GetSpacing(), origin=image.GetOrigin(),
                    direction=direction)
    if extent[0] or extent[2] or extent[4]:
        # A non-zero extent start shifts the first voxel; fold it into the origin.
        geom = Geometry(shape=geom.shape, spacing=geom.spacing,
                        origin=tuple(geom.index_to_world([extent[0], extent[2], extent[4]])),
                        direction=geom.direction)
    return arr, geom


def capture_window(window: Any) -> npt.NDArray[np.uint8]:
    """Render ``window`` (a ``vtkRenderWindow``) and return its pixels as RGB, row 0 at the top."""
    from vtkmodules.vtkRenderingCore import vtkWindowToImageFilter

    window.Render()
    grab = vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.ReadFrontBufferOff()
    grab.SetInputBufferTypeToRGB()
    grab.Update()
    image = grab.GetOutput()
    w, h, _ = image.GetDimensions()
    flat = vtk_to_numpy(image.GetPointData().GetScalars())  # type: ignore[no-untyped-call]
    return np.ascontiguousarray(flat.reshape(h, w, -1)[::-1, :, :3])


def to_vtk_matrix(m: npt.NDArray[np.float64]) -> vtkMatrix4x4:
    """A ``vtkMatrix4x4`` with the entries of the 4 x 4 array ``m``."""
    out = vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            out.SetElement(r, c, float(m[r, c]))
    return out
