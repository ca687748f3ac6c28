"""Voxel grid geometry in LPS world coordinates.

Conventions (the same as ITK/SimpleITK and DICOM):

* Arrays are indexed ``array[k, j, i]`` (slice, row, column), as ``SimpleITK.GetArrayFromImage``
  returns them.
* ``spacing``, ``origin`` and the columns of ``direction`` are given in ``(i, j, k)`` order.
* World coordinates are LPS millimetres: +x towards the patient's Left, +y Posterior,
  +z Superior. NIfTI's RAS is converted at the file boundary only.
* ``world = origin + direction @ (spacing * ijk)`` where ``ijk`` is a continuous index and
  ``ijk = 0`` is the centre of the first voxel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def _vec3(values: Sequence[float] | npt.ArrayLike, name: str) -> tuple[float, float, float]:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.shape != (3,) or not np.all(np.isfinite(arr)):
        shown = ", ".join(f"{v:g}" for v in arr)  # not np.float64(...) in a user's message
        raise ValueError(f"{name} must be three finite numbers, got ({shown})")
    return (float(arr[0]), float(arr[1]), float(arr[2]))


@dataclass(frozen=True)
class Geometry:
    """The grid of a 3D image: shape ``(k, j, i)`` plus its placement in LPS space.

    Parameters
    ----------
    shape
        Array shape ``(slices, rows, columns)``.
    spacing
        Voxel size in mm along ``i, j, k``.
    origin
        LPS position (mm) of the centre of voxel ``(i, j, k) = (0, 0, 0)``.
    direction
        3x3 matrix whose columns are the unit LPS directions of the ``i, j, k`` axes.
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = field(default=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"shape must be three positive sizes, got {self.shape!r}")
        spacing = _vec3(self.spacing, "spacing")
        if min(spacing) <= 0:
            raise ValueError(f"spacing must be positive, got {spacing!r}")
        d = np.asarray(self.direction, dtype=np.float64).reshape(-1)
        if d.shape != (9,) or not np.all(np.isfinite(d)):
            raise ValueError("direction must be a 3x3 matrix")
        if abs(np.linalg.det(d.reshape(3, 3))) < 1e-6:
            raise ValueError("direction matrix is singular")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", _vec3(self.origin, "origin"))
        object.__setattr__(self, "direction", tuple(float(v) for v in d))

    # -- matrices -------------------------------------------------------------------------
    @property
    def direction_matrix(self) -> FloatArray:
        """3x3 direction matrix (columns are the i, j, k axes in LPS)."""
        return np.asarray(self.direction, dtype=np.float64).reshape(3, 3)

    @property
    def affine(self) -> FloatArray:
        """4x4 matrix mapping homogeneous ``(i, j, k, 1)`` to LPS ``(x, y, z, 1)``."""
        a = np.eye(4)
        a[:3, :3] = self.direction_matrix * np.asarray(self.spacing)[None, :]
        a[:3, 3] = self.origin
        return a

    @property
    def size_ijk(self) -> tuple[int, int, int]:
        """Number of voxels along ``i, j, k`` (the reverse of ``shape``)."""
        k, j, i = self.shape
        return (i, j, k)

    # -- transforms -----------------------------------------------------------------------
    def index_to_world(self, ijk: npt.ArrayLike) -> FloatArray:
        """Map continuous ``(i, j, k)`` indices (shape ``(..., 3)``) to LPS mm."""
        p = np.asarray(ijk, dtype=np.float64)
        out: FloatArray = p @ self.affine[:3, :3].T + np.asarray(self.origin)
        return out

    def world_to_index(self, xyz: npt.ArrayLike) -> FloatArray:
        """Map LPS mm points (shape ``(..., 3)``) to continuous ``(i, j, k)`` indices."""
        p = np.asarray(xyz, dtype=np.float64) - np.asarray(self.origin)
        out: FloatArray = p @ np.linalg.inv(self.affine[:3, :3]).T
        return out

    def contains_index(self, ijk: npt.ArrayLike) -> bool:
        """Whether a (rounded) index lies inside the grid."""
        r = np.rint(np.asarray(ijk, dtype=np.float64))
        return bool(np.all(r >= 0) and np.all(r < np.asarray(self.size_ijk)))

    # -- derived grids ----------------------------------------------------------------------
    def crop(self, start_ijk: Sequence[int], stop_ijk: Sequence[int]) -> Geometry:
        """The sub-grid ``[start, stop)`` (in ``i, j, k``), placed where it was."""
        start = np.asarray(start_ijk, dtype=int)
        stop = np.asarray(stop_ijk, dtype=int)
        size = np.asarray(self.size_ijk)
        if np.any(start < 0) or np.any(stop > size) or np.any(stop <= start):
            raise ValueError(f"crop [{list(start)}, {list(stop)}) is outside grid {list(size)}")
        i, j, k = (stop - start).tolist()
        return Geometry(
            shape=(k, j, i),
            spacing=self.spacing,
            origin=tuple(self.index_to_world(start)),
            direction=self.direction,
        )

    def with_spacing(self, spacing: Sequence[float]) -> Geometry:
        """A grid covering the same physical extent at another spacing.

        The first voxel's centre stays put; the number of voxels is rounded so that the field
        of view (``size * spacing``) is kept as closely as possible.
        """
        new = np.asarray(_vec3(spacing, "spacing"))
        extent = np.asarray(self.size_ijk) * np.asarray(self.spacing)
        n = np.maximum(1, np.rint(extent / new)).astype(int)
        return Geometry(
            shape=(int(n[2]), int(n[1]), int(n[0])),
            spacing=tuple(new),
            origin=self.origin,
            direction=self.direction,
        )

    def same_grid(self, other: Geometry, tol: float = 1e-4) -> bool:
        """Whether two geometries describe the same voxels (within ``tol`` mm)."""
        return self.shape == other.shape and bool(np.allclose(self.affine, other.affine, atol=tol))

    def orientation_code(self) -> str:
        """Three-letter LPS orientation code of the i, j, k axes, e.g. ``"LPS"`` or ``"RAI"``."""
        letters = (("L", "R"), ("P", "A"), ("S", "I"))
        code = ""
        for col in self.direction_matrix.T:
            axis = int(np.argmax(np.abs(col)))
            code += letters[axis][0 if col[axis] > 0 else 1]
        return code

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary."""
        return {
            "size_ijk": list(self.size_ijk),
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "direction": [[float(v) for v in r] for r in self.direction_matrix],
            "orientation": self.orientation_code(),
        }
