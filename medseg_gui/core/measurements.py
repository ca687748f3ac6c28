"""What a segment measures: volume, longest 3D diameter, RECIST axes and intensity statistics.

The one place the app measures a segment; the report, the DICOM SR, the statistics table and the
RECIST lines in the views all take their figures from :func:`measure_segment`.

Where a segment's edge is
    A segment's surface runs half-way between the voxel centres inside and outside it, so its
    boundary points are the centres of the voxel faces between a segment voxel and a voxel
    outside it (:func:`boundary_points`). These are exactly the vertices of the 0.5
    iso-surface that marching cubes draws on the binary mask (the STL export's mesh), so the
    diameter here and the exported surface agree, and a line of ``n`` voxels measures ``n``
    voxels long. Voxel corners would make one voxel measure its diagonal; voxel centres would
    make it measure zero.
Longest 3D diameter
    The largest distance between two boundary points, in LPS millimetres, searched among the
    vertices of their convex hull (the farthest pair of a point set lies on its hull).
RECIST axes
    Measured on slices of the grid's third axis (``k``; the axial slices of an axial CT). On each
    slice the in-plane boundary points are the centres of the voxel edges between a segment
    pixel and a pixel outside it (the 2D form of the rule above). The long axis is the longest
    distance between two of them on the slice where that distance is longest. The short axis
    is the longest distance between two boundary points of that slice whose line is
    perpendicular to the long axis within :data:`PERPENDICULAR_TOLERANCE_DEG`. It is not
    required to cross the long axis or to stay inside a concave segment.
Distances are taken between world points (``Geometry.index_to_world``), so anisotropic voxels
and any direction matrix are accounted for; hull vertices are chosen in index space, which gives
the same vertices because a convex hull commutes with an affine map.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.spatial import ConvexHull, QhullError

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.progress import Cancelled, Progress
from medseg_gui.core.segmentation import Segmentation
from medseg_gui.core.volume import Volume

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
PERPENDICULAR_TOLERANCE_DEG = 3.0
_CHUNK = 256  # rows of a pairwise-difference block: 256 x n x 3 doubles per step


@dataclass(frozen=True)
class Axis:
    """A measured line: LPS endpoints (mm) and its length (mm)."""

    start: tuple[float, float, float]
    end: tuple[float, float, float]
    length_mm: float

    def to_dict(self) -> dict[str, Any]:
        return {"start_lps_mm": list(self.start), "end_lps_mm": list(self.end),
                "length_mm": self.length_mm}


@dataclass(frozen=True)
class Recist:
    """RECIST long axis and the longest perpendicular (short) axis on slice ``k``.

    ``short`` is ``None`` when no two boundary points of the slice lie on a perpendicular
    (a segment one pixel wide).
    """

    k: int
    long: Axis
    short: Axis | None


@dataclass(frozen=True)
class SegmentMeasurements:
    """The measurements of one segment (see the module docstring for the definitions).

    Parameters
    ----------
    label
        The segment's value in the label map.
    voxels, volume_ml
        Voxel count and volume (count times the voxel volume).
    diameter
        The longest 3D diameter's endpoints and length; ``None`` for an empty segment.
    recist
        RECIST axes; ``None`` for an empty segment.
    mean, minimum, maximum
        Image values inside the segment (HU for CT); ``None`` without an image or when empty.
    """

    label: int
    voxels: int
    volume_ml: float
    diameter: Axis | None
    recist: Recist | None
    mean: float | None
    minimum: float | None
    maximum: float | None

    @property
    def longest_diameter_mm(self) -> float:
        return self.diameter.length_mm if self.diameter is not None else 0.0


def boundary_points(mask: BoolArray, axes: Sequence[int] = (0, 1, 2)) -> FloatArray:
    """Centres of the faces between ``mask`` voxels and voxels outside it, as ``(k, j, i)``.

    Parameters
    ----------
    mask
        Boolean array (``[k, j, i]`` for a volume, ``[j, i]`` for a slice); voxels past the
        array's edge count as outside.
    axes
        The array axes whose faces count (``(1, 2)`` on a volume gives the in-plane edges of
        each ``k`` slice).

    Returns
    -------
    numpy.ndarray
        ``(n, mask.ndim)`` continuous indices, each face once.
    """
    padded = np.pad(mask, 1)
    inner = tuple(slice(1, -1) for _ in range(mask.ndim))
    out = []
    for axis in axes:
        for step in (-1, 1):
            neighbour = np.roll(padded, -step, axis=axis)[inner]
            idx = np.argwhere(mask & ~neighbour).astype(np.float64)
            idx[:, axis] += step / 2
            out.append(idx)
    return np.concatenate(out) if out else np.zeros((0, mask.ndim))


def _hull_vertices(points: FloatArray) -> FloatArray:
    """The points on the convex hull (all unique points when the set is flat or tiny)."""
    try:
        hull: FloatArray = points[ConvexHull(points).vertices]
    except (QhullError, ValueError):
        hull = np.unique(points, axis=0)
    return hull


def farthest_pair(world: FloatArray, allowed: Callable[[FloatArray], BoolArray] | None = None
                  ) -> tuple[int, int, float] | None:
    """Indices and distance of the two farthest points among ``world`` (n, 3).

    Parameters
    ----------
    world
        Points in mm.
    allowed
        Optional filter: given the difference vectors ``(rows, n, 3)`` of a block of pairs,
        which pairs may count (e.g. perpendicular to a direction).

    Returns
    -------
    tuple or None
        ``(a, b, distance)``, or ``None`` when fewer than two points (or no allowed pair).
    """
    best: tuple[int, int, float] | None = None
    for lo in range(0, len(world) - 1, _CHUNK):
        diff = world[None, :, :] - world[lo:lo + _CHUNK, None, :]
        d2 = np.einsum("rnc,rnc->rn", diff, diff)
        if allowed is not None:
            d2 = np.where(allowed(diff), d2, -1.0)
        r, n = np.unravel_index(int(np.argmax(d2)), d2.shape)
        if d2[r, n] > 0 and (best is None or d2[r, n] > best[2] ** 2):
            best = (lo + int(r), int(n), float(np.sqrt(d2[r, n])))
    return best


def _point(p: FloatArray) -> tuple[float, float, float]:
    return (float(p[0]), float(p[1]), float(p[2]))


def _axis(world: FloatArray, pair: tuple[int, int, float]) -> Axis:
    a, b, length = pair
    return Axis(_point(world[a]), _point(world[b]), length)


def _to_world(geometry: Geometry, kji: FloatArray) -> FloatArray:
    return geometry.index_to_world(kji[:, ::-1])


def longest_diameter(mask: BoolArray, geometry: Geometry) -> Axis | None:
    """The longest 3D diameter of ``mask`` (on ``geometry``), ``None`` when empty."""
    kji = _hull_vertices(boundary_points(mask))
    world = _to_world(geometry, kji)
    pair = farthest_pair(world)
    return None if pair is None else _axis(world, pair)


def perpendicular_to(direction: FloatArray, tolerance_deg: float = PERPENDICULAR_TOLERANCE_DEG
                     ) -> Callable[[FloatArray], BoolArray]:
    """A :func:`farthest_pair` filter: pairs whose line is within ``tolerance_deg`` of
    perpendicular to ``direction``."""
    u = direction / np.linalg.norm(direction)
    limit = np.sin(np.radians(tolerance_deg))

    def allowed(diff: FloatArray) -> BoolArray:
        along = np.abs(diff @ u)
        return np.asarray(along <= limit * np.linalg.norm(diff, axis=-1) + 1e-9)

    return allowed


def recist_axes(mask: BoolArray, geometry: Geometry,
                tolerance_deg: float = PERPENDICULAR_TOLERANCE_DEG) -> Recist | None:
    """RECIST long and short axes of ``mask`` on its ``k`` slices, ``None`` when empty."""
    edges = boundary_points(mask, axes=(1, 2))
    if not len(edges):
        return None
    ks = edges[:, 0].astype(np.int64)  # in-plane faces keep their slice's integer k
    best: tuple[int, FloatArray, tuple[int, int, float]] | None = None
    for k in np.unique(ks):
        on = edges[ks == k]
        world = _to_world(geometry, _hull_vertices_2d(on))
        pair = farthest_pair(world)
        if pair is not None and (best is None or pair[2] > best[2][2]):
            best = (int(k), world, pair)
    assert best is not None  # every slice with a pixel has its four edges
    k, world, pair = best
    long = _axis(world, pair)
    points = _to_world(geometry, edges[ks == k])
    short = farthest_pair(points, perpendicular_to(np.subtract(long.end, long.start),
                                                   tolerance_deg))
    return Recist(k, long, None if short is None else _axis(points, short))


def _hull_vertices_2d(kji: FloatArray) -> FloatArray:
    """Hull vertices of one slice's points (hull taken on ``(j, i)``, ``k`` kept)."""
    try:
        hull: FloatArray = kji[ConvexHull(kji[:, 1:]).vertices]
    except (QhullError, ValueError):
        hull = np.unique(kji, axis=0)
    return hull


def measure_segment(seg: Segmentation, label: int, volume: Volume | None = None
                    ) -> SegmentMeasurements:
    """Measure segment ``label`` of ``seg``; intensities from ``volume`` (same grid) when given.

    The geometry is measured on the mask's bounding box, so the cost follows the segment's
    size, not the volume's.
    """
    mask = seg.labelmap == label
    n = int(np.count_nonzero(mask))
    if n == 0:
        return SegmentMeasurements(label, 0, 0.0, None, None, None, None, None)
    kji = np.argwhere(mask)
    lo, hi = kji.min(axis=0), kji.max(axis=0) + 1
    crop = mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    sub = seg.geometry.crop(lo[::-1].tolist(), hi[::-1].tolist())
    recist = recist_axes(crop, sub)
    values = volume.array[mask] if volume is not None else None
    return SegmentMeasurements(
        label=label, voxels=n, volume_ml=n * seg.voxel_volume_ml(),
        diameter=longest_diameter(crop, sub),
        recist=None if recist is None else dataclasses.replace(recist, k=recist.k + int(lo[0])),
        mean=None if values is None else float(values.mean(dtype=np.float64)),
        minimum=None if values is None else float(values.min()),
        maximum=None if values is None else float(values.max()))


def measure_all(seg: Segmentation, volume: Volume | None = None,
                progress: Progress | None = None
                ) -> list[SegmentMeasurements]:
    """:func:`measure_segment` for every segment of the table, in table order.

    Raises
    ------
    ValueError
        ``volume`` is on another grid than ``seg`` (intensities would be misread).
    Cancelled
        ``progress`` returned False.
    """
    if volume is not None and not volume.geometry.same_grid(seg.geometry, tol=1e-3):
        raise ValueError("the mask is not on the image's grid")
    out = []
    for n, s in enumerate(seg.segments):
        if progress is not None and not progress(n / max(1, len(seg.segments)),
                                                 f"Measuring {s.name}"):
            raise Cancelled()
        out.append(measure_segment(seg, s.label, volume))
    return out
