"""Islands (keep largest, remove small, split), smoothing (median, closing), grow/shrink in mm.

Each works on the segment's bounding box plus the margin it needs, never the whole volume, with
sizes in mm turned into voxels per axis so anisotropic CT (e.g. 0.8 x 0.8 x 3 mm) is handled.
Voxels are only added over background (unless ``overwrite``) and only the segment's own voxels
are removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from medseg_gui.core.segmentation import Segmentation
from medseg_gui.editing.base import BoolArray, Change, LabelArray, Region, mask_bbox, spacing_kji

IntArray = npt.NDArray[np.int32]


def _crop(seg: Segmentation, label: int, margin: Sequence[int] = (0, 0, 0)
          ) -> tuple[Region, LabelArray, BoolArray] | None:
    region = mask_bbox(seg.labelmap == label, margin)
    if region is None:
        return None
    old = seg.labelmap[region]
    return region, old, old == label


def _result(name: str, region: Region, old: LabelArray, mask: BoolArray, label: int,
            overwrite: bool) -> Change:
    new = old.copy()
    new[(old == label) & ~mask] = 0
    add = mask & (old != label)
    if not overwrite:
        add &= old == 0
    new[add] = label
    return Change(name, region, new)


def _components(mask: BoolArray, full_connectivity: bool) -> tuple[IntArray, IntArray]:
    structure = ndimage.generate_binary_structure(3, 3 if full_connectivity else 1)
    lab, n = ndimage.label(mask, structure=structure)
    sizes = np.bincount(lab.ravel(), minlength=n + 1).astype(np.int32)
    sizes[0] = 0
    return lab.astype(np.int32), sizes


def voxel_mm3(seg: Segmentation) -> float:
    """Volume of one voxel in mm^3."""
    return float(np.prod(seg.geometry.spacing))


def keep_largest_island(seg: Segmentation, label: int, *,
                        full_connectivity: bool = True) -> Change:
    """Remove every connected piece of ``label`` but the largest."""
    crop = _crop(seg, label)
    if crop is None:
        return Change("Keep largest island", None, None)
    region, old, mask = crop
    lab, sizes = _components(mask, full_connectivity)
    return _result("Keep largest island", region, old, lab == int(np.argmax(sizes)), label, False)


def remove_small_islands(seg: Segmentation, label: int, min_mm3: float, *,
                         full_connectivity: bool = True) -> Change:
    """Remove the pieces of ``label`` smaller than ``min_mm3``."""
    crop = _crop(seg, label)
    if crop is None:
        return Change("Remove small islands", None, None)
    region, old, mask = crop
    lab, sizes = _components(mask, full_connectivity)
    keep = sizes * voxel_mm3(seg) >= min_mm3
    keep[0] = False
    return _result("Remove small islands", region, old, keep[lab], label, False)


def split_islands(seg: Segmentation, label: int, *, min_mm3: float = 0.0,
                  full_connectivity: bool = True) -> Change:
    """Make every piece of ``label`` but the largest a new segment ("<name> 2", "<name> 3"...).

    Pieces smaller than ``min_mm3`` are removed. New labels are the smallest unused ones; the
    change carries the new segment table.

    Raises
    ------
    ValueError
        When the label map's dtype has no room for the new labels.
    """
    name = "Split islands"
    crop = _crop(seg, label)
    if crop is None:
        return Change(name, None, None)
    region, old, mask = crop
    lab, sizes = _components(mask, full_connectivity)
    order = [int(c) for c in np.argsort(-sizes, kind="stable")
             if sizes[c] > 0 and sizes[c] * voxel_mm3(seg) >= min_mm3]
    used = {s.label for s in seg.segments} | {0}
    limit = int(np.iinfo(seg.labelmap.dtype).max)
    free = (v for v in range(1, limit + 1) if v not in used)
    base = seg.segment(label)
    table = list(seg.segments)
    lut = np.zeros(len(sizes), dtype=seg.labelmap.dtype)
    for n, comp in enumerate(order):
        if n == 0:
            lut[comp] = label
            continue
        new_label = next(free, None)
        if new_label is None:
            raise ValueError(f"no free label left in a {seg.labelmap.dtype} label map")
        lut[comp] = new_label
        table.append(replace(base, label=new_label, name=f"{base.name} {n + 1}"))
    new = old.copy()
    new[mask] = lut[lab[mask]]
    return Change(name, region, new, tuple(table))


def median_smooth(seg: Segmentation, label: int, size_mm: float) -> Change:
    """Median filter of the segment's mask with a box of about ``size_mm`` (odd voxels/axis)."""
    sp = spacing_kji(seg.geometry)
    size = tuple(max(1, 2 * round(size_mm / s / 2.0) + 1) for s in sp)
    crop = _crop(seg, label, [n // 2 + 1 for n in size])
    if crop is None:
        return Change("Median smoothing", None, None)
    region, old, mask = crop
    smoothed = ndimage.median_filter(mask.astype(np.uint8), size=size) != 0
    return _result("Median smoothing", region, old, smoothed, label, False)


def ellipsoid(radius_mm: float, spacing: Sequence[float]) -> BoolArray:
    """A ball of ``radius_mm`` on voxels of ``spacing`` (array order) as a structuring element."""
    half = [int(np.floor(radius_mm / s)) for s in spacing]
    grids = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    d2 = sum((g * s) ** 2 for g, s in zip(grids, spacing, strict=True))
    out: BoolArray = np.asarray(d2 <= radius_mm**2 + 1e-9)
    return out


def closing(seg: Segmentation, label: int, radius_mm: float) -> Change:
    """Morphological closing with a ball of ``radius_mm``: fills gaps and dents, adds only."""
    sp = spacing_kji(seg.geometry)
    ball = ellipsoid(radius_mm, sp)
    margin = [h // 2 + 1 for h in ball.shape]
    crop = _crop(seg, label, margin)
    if crop is None:
        return Change("Closing", None, None)
    region, old, mask = crop
    # Pad so that dilation does not run into the array edge before eroding back.
    padded = np.pad(mask, [(m, m) for m in margin])
    closed = ndimage.binary_closing(padded, structure=ball)
    inner = tuple(slice(m, m + n) for m, n in zip(margin, mask.shape, strict=True))
    return _result("Closing", region, old, closed[inner] | mask, label, False)


def grow_shrink(seg: Segmentation, label: int, margin_mm: float, *,
                overwrite: bool = False) -> Change:
    """Grow (``margin_mm > 0``) or shrink (``< 0``) the segment by a distance in mm.

    Uses the exact Euclidean distance transform with the voxel spacing, so the margin is
    isotropic in mm however anisotropic the grid. A voxel is added when its centre is within
    ``margin_mm`` of a segment voxel's centre, removed when within ``|margin_mm|`` of background.
    """
    name = "Grow" if margin_mm > 0 else "Shrink"
    sp = spacing_kji(seg.geometry)
    pad = [int(np.ceil(abs(margin_mm) / s)) + 1 for s in sp]
    crop = _crop(seg, label, pad)
    if crop is None or margin_mm == 0:
        return Change(name, None, None)
    region, old, mask = crop
    if margin_mm > 0:
        dist = ndimage.distance_transform_edt(~mask, sampling=sp)
        result = mask | (dist <= margin_mm + 1e-6)
    else:
        # The crop has background on every side except at the volume's edge, which is
        # deliberately not treated as background (a mask cut by the field of view keeps its cut).
        dist = ndimage.distance_transform_edt(mask, sampling=sp)
        result = mask & (dist > -margin_mm + 1e-6)
    return _result(name, region, old, result, label, overwrite)

