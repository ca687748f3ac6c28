"""Where a slice view's pixels lie in LPS space: pure numpy, no VTK.

Every view uses a fixed frame in LPS world, whatever the study's direction matrix, so the
radiological convention holds for any acquisition:

* axial: screen right = patient left (+x), screen up = anterior (-y), seen from the feet;
* coronal: screen right = patient left (+x), screen up = superior (+z), seen from the front;
* sagittal: screen right = posterior (+y), so anterior is on the left, screen up = superior.

A view's coordinates ``(X, Y, Z)`` are ``R.T @ world`` where the columns of ``R`` are the
screen-right, screen-up and towards-the-viewer unit vectors. ``Z`` is the slice position.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg_gui.core.geometry import Geometry

FloatArray = npt.NDArray[np.float64]


class Orientation(StrEnum):
    """The three standard slice orientations."""

    AXIAL = "axial"
    CORONAL = "coronal"
    SAGITTAL = "sagittal"


# (screen right, screen up) in LPS for each orientation.
_FRAMES: dict[Orientation, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    Orientation.AXIAL: ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0)),
    Orientation.CORONAL: ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    Orientation.SAGITTAL: ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
}


def view_matrix(orientation: Orientation) -> FloatArray:
    """3x3 matrix whose columns are screen right, screen up and the normal (towards viewer)."""
    right, up = (np.asarray(v) for v in _FRAMES[Orientation(orientation)])
    return np.column_stack([right, up, np.cross(right, up)])


def direction_letter(vector: npt.ArrayLike) -> str:
    """The patient direction an LPS vector points to most: one of L R P A S I."""
    v = np.asarray(vector, dtype=np.float64)
    axis = int(np.argmax(np.abs(v)))
    return ("LR", "PA", "SI")[axis][0 if v[axis] > 0 else 1]


def edge_letters(orientation: Orientation) -> dict[str, str]:
    """Orientation letters at the ``left``, ``right``, ``top`` and ``bottom`` screen edges."""
    r = view_matrix(orientation)
    return {"left": direction_letter(-r[:, 0]), "right": direction_letter(r[:, 0]),
            "top": direction_letter(r[:, 1]), "bottom": direction_letter(-r[:, 1])}


@dataclass(frozen=True)
class SliceLayout:
    """The 2D pixel grid and slice positions of one orientation over one volume grid.

    ``origin``/``spacing``/``size`` describe the in-plane grid in view coordinates (X, Y);
    slice ``s`` lies at ``Z = z0 + s * dz`` for ``s`` in ``[0, n_slices)``. When a volume axis
    is aligned with a view axis the grid points are exactly the voxel centres, so nothing is
    interpolated and each voxel keeps its true (possibly anisotropic) size on screen.
    """

    orientation: Orientation
    rotation: FloatArray
    origin: tuple[float, float]
    spacing: tuple[float, float]
    size: tuple[int, int]
    z0: float
    dz: float
    n_slices: int

    @staticmethod
    def of(geometry: Geometry, orientation: Orientation) -> SliceLayout:
        """The layout of ``orientation`` over ``geometry``."""
        rot = view_matrix(orientation)
        d = geometry.direction_matrix
        spacing = np.asarray(geometry.spacing)
        size = np.asarray(geometry.size_ijk)
        corners = np.array([[a, b, c] for a in (0, size[0] - 1) for b in (0, size[1] - 1)
                            for c in (0, size[2] - 1)], dtype=np.float64)
        view = geometry.index_to_world(corners) @ rot
        lo, hi = view.min(axis=0), view.max(axis=0)
        steps = []
        for axis in range(3):
            # The volume axis best aligned with this view axis sets the step; an oblique
            # grid falls back to the finest spacing.
            cos = np.abs(rot[:, axis] @ d) / np.linalg.norm(d, axis=0)
            best = int(np.argmax(cos))
            steps.append(float(spacing[best]) if cos[best] > 0.999 else float(spacing.min()))
        counts = [round(float(hi[a] - lo[a]) / steps[a]) + 1 for a in range(3)]
        return SliceLayout(
            orientation=Orientation(orientation), rotation=rot,
            origin=(float(lo[0]), float(lo[1])), spacing=(steps[0], steps[1]),
            size=(counts[0], counts[1]), z0=float(lo[2]), dz=steps[2], n_slices=counts[2],
        )

    # -- coordinates --------------------------------------------------------------------
    def world_to_view(self, world: npt.ArrayLike) -> FloatArray:
        """LPS points (``(..., 3)``) to view coordinates ``(X, Y, Z)``."""
        out: FloatArray = np.asarray(world, dtype=np.float64) @ self.rotation
        return out

    def view_to_world(self, view: npt.ArrayLike) -> FloatArray:
        """View coordinates ``(X, Y, Z)`` (``(..., 3)``) to LPS points."""
        out: FloatArray = np.asarray(view, dtype=np.float64) @ self.rotation.T
        return out

    def slice_z(self, index: int) -> float:
        """View ``Z`` of slice ``index``."""
        return self.z0 + index * self.dz

    def slice_index(self, z: float) -> int:
        """The slice nearest to view ``Z``, clamped to the volume."""
        return int(np.clip(round((z - self.z0) / self.dz), 0, self.n_slices - 1))

    def world_bounds(self) -> tuple[float, float, float, float]:
        """``(xmin, xmax, ymin, ymax)`` of the in-plane grid, pixel edges included."""
        (x0, y0), (sx, sy), (nx, ny) = self.origin, self.spacing, self.size
        return (x0 - sx / 2, x0 + (nx - 0.5) * sx, y0 - sy / 2, y0 + (ny - 0.5) * sy)

    def reslice_matrix(self, geometry: Geometry, index: int) -> FloatArray:
        """4x4 matrix from output coordinates ``(X, Y, 0)`` of slice ``index`` to the input
        coordinates ``spacing * ijk`` of a direction-less ``vtkImageData`` of ``geometry``."""
        d_inv = np.linalg.inv(geometry.direction_matrix)
        m = np.eye(4)
        m[:3, :3] = d_inv @ self.rotation
        m[:3, 3] = d_inv @ (self.slice_z(index) * self.rotation[:, 2] - np.asarray(geometry.origin))
        return m


# How far (in voxels) a view pixel may lie from a voxel centre and still be read as that voxel
# without interpolating: rounding in the direction matrix and the layout, nothing more.
_ON_CENTRE = 1e-5


def plane_of(array: npt.NDArray[Any], layout: SliceLayout, geometry: Geometry, index: int,
             background: float = 0) -> npt.NDArray[Any] | None:
    """The pixels of slice ``index`` of ``layout`` read straight out of ``array``, or ``None``.

    ``array`` (indexed ``[k, j, i]``) lies on ``geometry``. When every pixel of the slice is a
    voxel centre of that grid (the view's axes are the grid's axes, up to sign, at the grid's
    spacing: any axis-aligned acquisition), the slice is a plain numpy view of the array, with
    rows running up the screen (row 0 at the bottom, as in a ``vtkImageData``) and the parts
    outside the grid set to ``background`` (then it is a copy). This is what a reslice with any
    interpolation returns there, without computing it. ``None``: the grid is oblique to the
    view, or its spacing differs; the caller must interpolate.
    """
    nx, ny = layout.size
    x0, y0 = layout.origin
    sx, sy = layout.spacing
    corner = layout.view_to_world(np.array([[x0, y0, layout.slice_z(index)],
                                            [x0 + sx, y0, layout.slice_z(index)],
                                            [x0, y0 + sy, layout.slice_z(index)]]))
    ijk = geometry.world_to_index(corner)
    start, along_x, along_y = ijk[0], ijk[1] - ijk[0], ijk[2] - ijk[0]
    axis_x, axis_y = int(np.argmax(np.abs(along_x))), int(np.argmax(np.abs(along_y)))
    step_x, step_y = int(np.rint(along_x[axis_x])), int(np.rint(along_y[axis_y]))
    if (axis_x == axis_y or abs(step_x) != 1 or abs(step_y) != 1
            or np.abs(along_x - step_x * np.eye(3)[axis_x]).max() > _ON_CENTRE
            or np.abs(along_y - step_y * np.eye(3)[axis_y]).max() > _ON_CENTRE
            or np.abs(start - np.rint(start)).max() > _ON_CENTRE):
        return None
    first = np.rint(start).astype(int)
    size = geometry.size_ijk
    axis_z = 3 - axis_x - axis_y
    if not 0 <= first[axis_z] < size[axis_z]:
        return np.full((ny, nx), background, dtype=array.dtype)
    # The pixels (columns / rows) whose voxel lies inside the grid.
    cols = _inside(first[axis_x], step_x, nx, size[axis_x])
    rows = _inside(first[axis_y], step_y, ny, size[axis_y])
    if cols is None or rows is None:
        return np.full((ny, nx), background, dtype=array.dtype)
    pick: list[int | slice] = [0, 0, 0]  # per ijk axis
    pick[axis_z] = int(first[axis_z])
    for axis, step, (lo, hi) in ((axis_x, step_x, cols), (axis_y, step_y, rows)):
        a = int(first[axis]) + step * lo
        b = int(first[axis]) + step * hi
        pick[axis] = slice(a, b if b >= 0 else None, step)
    plane = array[pick[2], pick[1], pick[0]]  # the array is [k, j, i]
    if 2 - axis_y > 2 - axis_x:  # numpy kept array-axis order: put rows first
        plane = plane.T
    if cols == (0, nx) and rows == (0, ny):
        return plane
    out = np.full((ny, nx), background, dtype=array.dtype)
    out[rows[0]:rows[1], cols[0]:cols[1]] = plane
    return out


def _inside(first: int, step: int, count: int, size: int) -> tuple[int, int] | None:
    """The pixels ``[lo, hi)`` of ``first + step * n`` (``n < count``) inside ``[0, size)``."""
    if step > 0:
        lo, hi = max(0, -first), min(count, size - first)
    else:
        lo, hi = max(0, first - size + 1), min(count, first + 1)
    return (lo, hi) if lo < hi else None


def probe(array: npt.NDArray[Any], geometry: Geometry, world: npt.ArrayLike
          ) -> tuple[tuple[int, int, int] | None, float | None]:
    """The voxel ``(i, j, k)`` containing an LPS point and its value (``None`` outside)."""
    ijk = np.rint(geometry.world_to_index(world)).astype(int)
    if not geometry.contains_index(ijk):
        return None, None
    i, j, k = (int(v) for v in ijk)
    return (i, j, k), float(array[k, j, i])
