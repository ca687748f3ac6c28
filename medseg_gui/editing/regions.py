"""Fill (region grow from a click) and scissors (a polygon cut through a range of slices).

Both return a :class:`~medseg_gui.editing.base.Change`; the editor commits it as one undo step.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from skimage.draw import polygon2mask

from medseg_gui.core.segmentation import Segmentation
from medseg_gui.editing.base import (
    BoolArray,
    Change,
    ViewAxis,
    region_of_bounds,
    spacing_kji,
)
from medseg_gui.editing.constraints import NO_CONSTRAINT, PaintConstraint, apply_paint


def region_grow(seg: Segmentation, image: npt.NDArray[Any], seed_ijk: Sequence[float],
                label: int, *, tolerance_hu: float = 50.0,
                hu_range: tuple[float, float] | None = None, axis: ViewAxis | None = None,
                max_radius_mm: float = 60.0, full_connectivity: bool = False,
                constraint: PaintConstraint = NO_CONSTRAINT) -> Change:
    """Paint the voxels connected to a seed whose value is within a tolerance of the seed's.

    Parameters
    ----------
    seg
        The segmentation (read only).
    image
        The image on the same grid (HU for CT).
    seed_ijk
        The clicked point, continuous ``(i, j, k)``.
    label
        The segment to paint.
    tolerance_hu
        Accept values within ``seed value +- tolerance_hu`` ...
    hu_range
        ... or, when given, within this ``(lo, hi)`` instead.
    axis
        Grow in the clicked slice of this view only; ``None`` grows in 3D.
    max_radius_mm
        The fill stays inside a box of this half-size around the seed, so that a leak into a
        large organ stays bounded (and fast).
    full_connectivity
        Connect through edges and corners too (26 neighbours), not only faces (6).
    constraint
        Further limits on which voxels change (intensity preset, inside a segment, overwrite).

    Returns
    -------
    Change
        Named "Fill"; an empty change (``region`` ``None``) when the seed is outside the image or
        itself not paintable.
    """
    seed = np.rint(np.asarray(seed_ijk, dtype=np.float64)[::-1]).astype(int)
    if np.any(seed < 0) or np.any(seed >= np.asarray(seg.labelmap.shape)):
        return Change("Fill", None, None)
    half = [int(np.ceil(max_radius_mm / s)) for s in spacing_kji(seg.geometry)]
    if axis is not None:
        half[int(axis)] = 0
    start = [int(s) - h for s, h in zip(seed, half, strict=True)]
    region = region_of_bounds(start, [a + 2 * h + 1 for a, h in zip(start, half, strict=True)],
                              seg.labelmap.shape)
    assert region is not None  # the seed is inside
    sub = image[region]
    rel = tuple(int(s - r.start) for s, r in zip(seed, region, strict=True))
    if hu_range is None:
        centre = float(sub[rel])
        lo, hi = centre - tolerance_hu, centre + tolerance_hu
    else:
        lo, hi = hu_range
    old = seg.labelmap[region]
    candidates = (sub >= lo) & (sub <= hi)
    allowed = constraint.allowed(old, sub, label, erase=False)
    if allowed is not None:
        candidates &= allowed
    if not candidates[rel]:
        return Change("Fill", None, None)
    structure = ndimage.generate_binary_structure(3, 3 if full_connectivity else 1)
    components, _ = ndimage.label(candidates, structure=structure)
    grown: BoolArray = components == components[rel]
    new = old.copy()
    new[grown] = label
    return Change("Fill", region, new)


class ScissorsOp(StrEnum):
    """What scissors do with the polygon."""

    FILL_INSIDE = "fill_inside"
    ERASE_INSIDE = "erase_inside"
    ERASE_OUTSIDE = "erase_outside"


def _plane_axes(axis: ViewAxis) -> tuple[int, int]:
    rows, cols = (a for a in range(3) if a != int(axis))
    return rows, cols


def scissors(seg: Segmentation, polygon_uv: Sequence[Sequence[float]], axis: ViewAxis,
             label: int, *, op: ScissorsOp = ScissorsOp.ERASE_INSIDE,
             depth: tuple[int, int] | None = None, image: npt.NDArray[Any] | None = None,
             constraint: PaintConstraint = NO_CONSTRAINT) -> Change:
    """Fill or erase the voxels inside (or outside) a polygon, through a range of slices.

    Parameters
    ----------
    seg
        The segmentation (read only).
    polygon_uv
        Vertices ``(u, v)`` in continuous index coordinates of the view's plane (see
        :class:`~medseg_gui.editing.base.ViewAxis`: axial ``(i, j)``, coronal ``(i, k)``,
        sagittal ``(j, k)``). Voxels whose centre lies inside are cut.
    axis
        The view the polygon was drawn in.
    label
        The active segment (filled, or erased unless ``constraint.erase_any``).
    op
        Fill inside, erase inside, or erase outside.
    depth
        First and last slice (inclusive) along ``axis``; ``None`` cuts through the whole volume.
    image, constraint
        The image and the limits on which voxels may change.
    """
    name = {ScissorsOp.FILL_INSIDE: "Scissors fill", ScissorsOp.ERASE_INSIDE: "Scissors erase",
            ScissorsOp.ERASE_OUTSIDE: "Scissors erase outside"}[op]
    shape = seg.labelmap.shape
    rows, cols = _plane_axes(axis)
    pts = np.asarray(polygon_uv, dtype=np.float64).reshape(-1, 2)
    if len(pts) < 3:
        return Change(name, None, None)
    n_slices = shape[int(axis)]
    first, last = (0, n_slices - 1) if depth is None else (min(depth), max(depth))
    lo = [0, 0, 0]
    hi = list(shape)
    lo[int(axis)], hi[int(axis)] = first, last + 1
    if op is not ScissorsOp.ERASE_OUTSIDE:
        lo[cols], hi[cols] = int(np.floor(pts[:, 0].min())), int(np.ceil(pts[:, 0].max())) + 1
        lo[rows], hi[rows] = int(np.floor(pts[:, 1].min())), int(np.ceil(pts[:, 1].max())) + 1
    region = region_of_bounds(lo, hi, shape)
    if region is None:
        return Change(name, None, None)
    plane_shape = (region[rows].stop - region[rows].start, region[cols].stop - region[cols].start)
    local = np.stack([pts[:, 1] - region[rows].start, pts[:, 0] - region[cols].start], axis=1)
    inside2d: BoolArray = polygon2mask(plane_shape, local)  # type: ignore[no-untyped-call]
    where2d = ~inside2d if op is ScissorsOp.ERASE_OUTSIDE else inside2d
    where = np.broadcast_to(np.expand_dims(where2d, int(axis)),
                            tuple(r.stop - r.start for r in region))
    old = seg.labelmap[region]
    sub_image = None if image is None else image[region]
    new = apply_paint(old, where, sub_image, label, op is not ScissorsOp.FILL_INSIDE, constraint)
    return Change(name, region, new)
