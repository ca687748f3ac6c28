"""Where a slice view's pixels come from: one plane of a 3D array, and its colours.

A slice change used to run ``vtkImageReslice -> vtkImageMapToColors`` for the CT and for each
overlay, over the whole slice, and then scanned the overlay's RGBA for its visible box. For the
usual axis-aligned study the plane is a numpy view of the array
(:func:`~medseg_gui.rendering.slicing.plane_of`), so nothing is resampled; only a grid oblique
to the view goes through ``vtkImageReslice`` (same result where both apply; the tests compare
them). Colours come from code tables: every value an 8- or 16-bit image can hold mapped once
through the colour map (window/level through VTK's own ``vtkScalarsToColors`` ramp, so the grey
values are those ``vtkImageActor`` shows), then one ``take`` per slice. An overlay is coloured
only inside the box of its non-zero voxels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkScalarsToColors
from vtkmodules.vtkImagingCore import vtkImageReslice

from medseg_gui.core.geometry import Geometry
from medseg_gui.rendering.imagedata import to_vtk_image, to_vtk_matrix
from medseg_gui.rendering.slicing import SliceLayout, plane_of

_MAP_SCALARS, _LUMINANCE = 1, 1  # VTK_COLOR_MODE_MAP_SCALARS, VTK_LUMINANCE


class PlaneSampler:
    """The pixels of a view's slice through one 3D array on its own grid.

    Parameters
    ----------
    linear
        Interpolation where the grid is oblique to the view: linear (the CT) or nearest
        neighbour (labels, and the probability whose values are float16 bit patterns).
    """

    def __init__(self, *, linear: bool) -> None:
        self.linear = linear
        self.array: npt.NDArray[Any] | None = None
        self.geometry: Geometry | None = None
        self.background = 0.0
        self._reslice: vtkImageReslice | None = None  # made on the first oblique plane

    def set_data(self, array: npt.NDArray[Any] | None, geometry: Geometry | None,
                 background: float = 0.0) -> None:
        """Sample ``array`` (indexed ``[k, j, i]``, shared, not copied) on ``geometry``; pixels
        outside the grid get ``background``. ``None`` forgets the array."""
        self.array = array
        self.geometry = geometry if array is not None else None
        self.background = float(background)
        self._reslice = None

    def plane(self, layout: SliceLayout, index: int) -> npt.NDArray[Any] | None:
        """Slice ``index`` of ``layout``: ``(rows, cols)``, row 0 at the bottom of the view
        (a view of the array where possible: read it before the array changes)."""
        if self.array is None or self.geometry is None:
            return None
        plane = plane_of(self.array, layout, self.geometry, index, self.background)
        return plane if plane is not None else self._resliced(layout, index)

    def _resliced(self, layout: SliceLayout, index: int) -> npt.NDArray[Any]:
        assert self.array is not None and self.geometry is not None
        if self._reslice is None:
            self._reslice = vtkImageReslice()
            self._reslice.SetOutputDimensionality(2)
            if self.linear:
                self._reslice.SetInterpolationModeToLinear()
            else:
                self._reslice.SetInterpolationModeToNearestNeighbor()
            self._reslice.SetBackgroundLevel(self.background)
            self._reslice.SetInputData(to_vtk_image(self.array, self.geometry,
                                                    with_direction=False))
        reslice = self._reslice
        (x0, y0), (sx, sy), (nx, ny) = layout.origin, layout.spacing, layout.size
        reslice.SetOutputOrigin(x0, y0, 0.0)
        reslice.SetOutputSpacing(sx, sy, 1.0)
        reslice.SetOutputExtent(0, nx - 1, 0, ny - 1, 0, 0)
        reslice.SetResliceAxes(to_vtk_matrix(layout.reslice_matrix(self.geometry, index)))
        reslice.GetInput().Modified()  # the array may have been edited in place
        reslice.Update()
        scalars = reslice.GetOutput().GetPointData().GetScalars()
        plane: npt.NDArray[Any] = vtk_to_numpy(scalars).reshape(ny, nx).copy()  # type: ignore[no-untyped-call]
        return plane


def code_table(colors: vtkScalarsToColors, dtype: npt.DTypeLike) -> npt.NDArray[np.uint8] | None:
    """Every value of an 8- or 16-bit integer ``dtype`` mapped to grey by ``colors``, indexed by
    the value's bits read as unsigned (see :func:`apply_table`); ``None`` for other types."""
    dt = np.dtype(dtype)
    if dt.kind not in "iu" or dt.itemsize > 2:
        return None
    codes = np.arange(256 ** dt.itemsize, dtype=f"u{dt.itemsize}").view(dt)
    return map_grey(colors, codes)


def map_grey(colors: vtkScalarsToColors, values: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """``values`` mapped to grey by VTK's ``colors`` (as ``vtkImageMapToColors`` does)."""
    flat = np.ascontiguousarray(values).reshape(-1)
    grey = colors.MapScalars(numpy_to_vtk(flat), _MAP_SCALARS, -1, _LUMINANCE)  # type: ignore[no-untyped-call]
    out: npt.NDArray[np.uint8] = vtk_to_numpy(grey).reshape(values.shape).copy()  # type: ignore[no-untyped-call]
    return out


def apply_table(table: npt.NDArray[np.uint8], values: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """Look up each value's entry in a code table (grey ``(n,)`` or RGBA ``(n, 4)``)."""
    codes = values.view(f"u{values.dtype.itemsize}") if values.dtype.kind == "i" else values
    out: npt.NDArray[np.uint8] = np.take(table, codes, axis=0)
    return out


def nonzero_box(values: npt.NDArray[Any]) -> tuple[int, int, int, int] | None:
    """``(row0, row1, col0, col1)`` (ends excluded) around the non-zero pixels, or ``None``."""
    rows = np.flatnonzero(values.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(values[rows[0]:rows[-1] + 1].any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
