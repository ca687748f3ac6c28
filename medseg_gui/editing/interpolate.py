"""Fill between slices: contours drawn on a few slices of one view become a 3D segment.

Shape-based interpolation (Raya & Udupa 1990): the signed distance maps (in mm) of the two
nearest drawn slices are blended linearly and thresholded at zero. It only adds voxels between the
first and last drawn slice; the drawn slices stay as they are.

Why this and not ITK's MorphologicalContourInterpolator (what 3D Slicer's "Fill between slices"
runs; on PyPI as the wheel ``itk-morphologicalcontourinterpolation``): measured on 52 real masks
(43 sarcoma GTVs, a lung GTV, OpenKBP PTV70s and mandibles), keeping every 4th slice, this method
restores more of the mask, faster, with nothing to install (``benchmarks/bench_interpolation.py``,
``benchmarks/results/bench_interpolation_cpu.txt``):

=============  ==========  =========  ==========  =========
axis           ours Dice   ours s     ITK Dice    ITK s
=============  ==========  =========  ==========  =========
axial (k)      0.963       0.03       0.957       0.15
sagittal (i)   0.965       0.03       0.960       0.15
=============  ==========  =========  ==========  =========

ITK's is higher on 3 and 2 of the 52 masks (thin curved mandibles), lower on the rest. Its
wheels also weigh 281 MB to download (the ``itk`` meta package with itk-core, -filtering,
-numerics, -registration, -segmentation and -io: 1.5 GB installed) and its first call loads
ITK's wrapped modules for 12 s.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from medseg_gui.core.progress import Progress, check, no_progress
from medseg_gui.core.segmentation import Segmentation
from medseg_gui.editing.base import BoolArray, Change, ViewAxis, mask_bbox, spacing_kji
from medseg_gui.editing.constraints import NO_CONSTRAINT, PaintConstraint, apply_paint

FloatArray = npt.NDArray[np.float64]


def _signed_distance(mask2d: BoolArray, sampling: tuple[float, float]) -> FloatArray:
    """Signed distance (mm) to the contour, negative inside."""
    outside: FloatArray = ndimage.distance_transform_edt(~mask2d, sampling=sampling)
    inside: FloatArray = ndimage.distance_transform_edt(mask2d, sampling=sampling)
    return outside - inside


def shape_based_interpolation(mask: BoolArray, axis: int, spacing: tuple[float, float, float],
                              progress: Progress = no_progress) -> BoolArray:
    """Fill the empty slices of ``mask`` (across ``axis``) between drawn ones.

    Parameters
    ----------
    mask
        3D mask, array order; slices across ``axis`` with any voxel set are "drawn".
    axis
        Array axis the slices are cut across.
    spacing
        Voxel size in mm, array order.
    progress
        Reports per gap between drawn slices; may cancel.
    """
    m = np.moveaxis(mask, axis, 0)
    sampling = tuple(s for a, s in enumerate(spacing) if a != axis)
    drawn = np.flatnonzero(m.reshape(m.shape[0], -1).any(axis=1))
    out = m.copy()
    pairs = [(int(a), int(b)) for a, b in itertools.pairwise(drawn) if b - a > 1]
    for n, (a, b) in enumerate(pairs):
        check(progress, n / max(1, len(pairs)), "Interpolating between slices")
        da = _signed_distance(m[a], (sampling[0], sampling[1]))
        db = _signed_distance(m[b], (sampling[0], sampling[1]))
        for s in range(a + 1, b):
            t = (s - a) / (b - a)
            out[s] = (1.0 - t) * da + t * db < 0.0
    result: BoolArray = np.moveaxis(out, 0, axis)
    return result


def fill_between_slices(seg: Segmentation, label: int, axis: ViewAxis = ViewAxis.AXIAL, *,
                        image: npt.NDArray[Any] | None = None,
                        constraint: PaintConstraint = NO_CONSTRAINT,
                        progress: Progress = no_progress) -> Change:
    """Interpolate segment ``label`` between the slices of ``axis`` it was drawn on.

    Parameters
    ----------
    seg
        The segmentation (read only).
    label
        The segment drawn on a few slices.
    axis
        The view whose slices were drawn.
    image, constraint
        Limits on which voxels may be filled (e.g. do not overwrite other segments).
    progress
        ``progress(fraction, message) -> bool``; ``False`` cancels with
        :class:`~medseg_gui.core.progress.Cancelled`, nothing written.

    Returns
    -------
    Change
        Named "Fill between slices", covering the segment's bounding box.
    """
    name = "Fill between slices"
    region = mask_bbox(seg.labelmap == label, margin=(1, 1, 1))
    if region is None:
        return Change(name, None, None)
    old = seg.labelmap[region]
    mask = old == label
    check(progress, 0.0, "Interpolating between slices")
    filled = shape_based_interpolation(mask, int(axis), spacing_kji(seg.geometry), progress)
    check(progress, 1.0, "Interpolated")
    sub_image = None if image is None else image[region]
    new = apply_paint(old, filled & ~mask, sub_image, label, False, constraint)
    return Change(name, region, new)
