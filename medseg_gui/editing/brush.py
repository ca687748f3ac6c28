"""Brush and eraser: disc or sphere stamps in mm, strokes without gaps, one undo step per stroke.

A stamp touches only its own bounding box of the label map (a few thousand voxels for a 10 mm
brush), never the whole volume; the kernel for each ``(diameter, spacing, shape, axis)`` is
computed once and cached. Between two mouse positions a stroke stamps every half radius (and at
least every half voxel) so that a fast mouse leaves no gaps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg_gui.editing.base import BoolArray, LabelArray, Region, ViewAxis, region_of_bounds
from medseg_gui.editing.constraints import NO_CONSTRAINT, PaintConstraint
from medseg_gui.editing.history import Edit, StrokeRecorder


class BrushShape(StrEnum):
    """A flat disc in the plane of the view, or a ball (an ellipsoid in voxels)."""

    DISC = "disc"
    SPHERE = "sphere"


@dataclass(frozen=True)
class BrushSettings:
    """What the brush panel sets.

    Parameters
    ----------
    diameter_mm
        Brush size in mm (the diameter, as in 3D Slicer).
    shape
        ``DISC`` (2D, in the plane of ``axis``) or ``SPHERE`` (3D).
    axis
        The view being painted in; only used by the disc.
    constraint
        Intensity / segment limits on what changes.
    """

    diameter_mm: float = 10.0
    shape: BrushShape = BrushShape.SPHERE
    axis: ViewAxis = ViewAxis.AXIAL
    constraint: PaintConstraint = field(default=NO_CONSTRAINT)

    def kernel(self, spacing_kji: Sequence[float]) -> BoolArray:
        """The stamp for this size on voxels of ``spacing_kji`` mm (cached)."""
        sp = (float(spacing_kji[0]), float(spacing_kji[1]), float(spacing_kji[2]))
        axis = int(self.axis) if self.shape is BrushShape.DISC else -1
        return stamp_kernel(round(float(self.diameter_mm), 4), sp, axis)


@lru_cache(maxsize=64)
def stamp_kernel(diameter_mm: float, spacing_kji: tuple[float, float, float],
                 flat_axis: int = -1) -> BoolArray:
    """Boolean stamp of odd shape centred on its middle voxel (read-only, cached).

    Parameters
    ----------
    diameter_mm
        Brush diameter in mm; voxels whose centre lies within the radius are in. The centre voxel
        is always in, so a brush smaller than a voxel paints one voxel.
    spacing_kji
        Voxel size in mm, array order.
    flat_axis
        ``-1`` for a ball; an array axis (0, 1, 2) for a disc one voxel thick across that axis.
    """
    radius = max(diameter_mm / 2.0, 1e-6)
    half = [math.floor(radius / s) for s in spacing_kji]
    if flat_axis >= 0:
        half[flat_axis] = 0
    grids = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    d2 = sum((g * s / radius) ** 2 for g, s in zip(grids, spacing_kji, strict=True))
    kernel = np.asarray(d2 <= 1.0 + 1e-9)
    kernel[tuple(half)] = True
    kernel.flags.writeable = False
    return kernel


def stamp(labelmap: LabelArray, center_kji: Sequence[int], kernel: BoolArray, label: int, *,
          erase: bool = False, image: npt.NDArray[Any] | None = None,
          constraint: PaintConstraint = NO_CONSTRAINT,
          recorder: StrokeRecorder | None = None) -> Region | None:
    """Paint (or erase) one stamp in place; returns the box it changed, or ``None``.

    Parameters
    ----------
    labelmap
        The label map, written in place.
    center_kji
        The voxel at the stamp's centre (array order); it may lie outside the map.
    kernel
        From :func:`stamp_kernel`.
    label
        The active segment; painting writes it, erasing clears it (or any label, per constraint).
    image
        The image on the same grid, for the constraint's intensity range.
    recorder
        Receives the old values of the box before they are overwritten.
    """
    half = [s // 2 for s in kernel.shape]
    lo = [int(c) - h for c, h in zip(center_kji, half, strict=True)]
    region = region_of_bounds(lo, [a + s for a, s in zip(lo, kernel.shape, strict=True)],
                              labelmap.shape)
    if region is None:
        return None
    ksl = tuple(slice(r.start - a, r.stop - a) for r, a in zip(region, lo, strict=True))
    mask = kernel[ksl]
    block = labelmap[region]
    sub_image = image[region] if image is not None and constraint.hu_range else None
    allowed = constraint.allowed(block, sub_image, label, erase)
    if allowed is not None:
        mask = mask & allowed
    value = 0 if erase else label
    if not np.any(block[mask] != value):
        return None
    if recorder is not None:
        recorder.save(region)
    block[mask] = value
    return region


def stroke_centers(p0_ijk: npt.ArrayLike, p1_ijk: npt.ArrayLike, diameter_mm: float,
                   spacing_kji: Sequence[float]) -> list[tuple[int, int, int]]:
    """Voxel centres (array order) at which to stamp from ``p0`` (excluded) to ``p1`` (included).

    Steps are half the radius (a quarter of the diameter), so successive stamps overlap; a brush
    smaller than two voxels steps half the smallest voxel instead, so consecutive one-voxel stamps
    are 26-neighbours. Either way a fast mouse leaves no gaps.
    """
    a = np.asarray(p0_ijk, dtype=np.float64)[::-1]
    b = np.asarray(p1_ijk, dtype=np.float64)[::-1]
    sp = np.asarray(spacing_kji, dtype=np.float64)
    length_mm = float(np.linalg.norm((b - a) * sp))
    step = max(diameter_mm / 4.0, float(sp.min()) / 2.0)
    n = max(1, math.ceil(length_mm / step))
    pts = np.rint(a[None, :] + (b - a)[None, :] * (np.arange(1, n + 1)[:, None] / n)).astype(int)
    out: list[tuple[int, int, int]] = []
    prev = tuple(np.rint(a).astype(int).tolist())
    for p in pts:
        t = (int(p[0]), int(p[1]), int(p[2]))
        if t != prev:
            out.append(t)
            prev = t
    return out


class BrushStroke:
    """One press-drag-release of the brush or eraser, committed as one :class:`Edit`.

    Parameters
    ----------
    labelmap
        The label map painted in place (the overlay can show it at once).
    spacing_kji
        Voxel size in mm, array order.
    settings
        Brush size, shape, view axis and constraint.
    label
        The active segment.
    erase
        Eraser rather than brush.
    image
        The image on the same grid (for the intensity limit).
    """

    def __init__(self, labelmap: LabelArray, spacing_kji: Sequence[float],
                 settings: BrushSettings, label: int, *, erase: bool = False,
                 image: npt.NDArray[Any] | None = None) -> None:
        self.labelmap = labelmap
        self.settings = settings
        self.label = int(label)
        self.erase = erase
        self.image = image
        self.spacing = tuple(float(s) for s in spacing_kji)
        self.kernel = settings.kernel(self.spacing)
        self.recorder = StrokeRecorder(labelmap, "Erase" if erase else "Paint")
        self._last: np.ndarray[Any, np.dtype[np.float64]] | None = None
        self.started = time.time()

    def _stamp(self, center: Sequence[int]) -> Region | None:
        return stamp(self.labelmap, center, self.kernel, self.label, erase=self.erase,
                     image=self.image, constraint=self.settings.constraint,
                     recorder=self.recorder)

    def move_to(self, point_ijk: Sequence[float]) -> list[Region]:
        """Stamp from the previous position to ``point_ijk`` (continuous ``(i, j, k)``).

        The first call stamps once at the point. Returns the boxes changed, for the overlay.
        """
        p = np.asarray(point_ijk, dtype=np.float64)
        if self.settings.shape is BrushShape.DISC and self._last is not None:
            # A disc stroke stays on the slice it started on, whatever the mouse mapping says.
            ax = 2 - int(self.settings.axis)
            p[ax] = self._last[ax]
        if self._last is None:
            k, j, i = np.rint(p[::-1]).astype(int).tolist()
            centers = [(k, j, i)]
        else:
            centers = stroke_centers(self._last, p, self.settings.diameter_mm, self.spacing)
        self._last = p
        changed = [r for r in map(self._stamp, centers) if r is not None]
        return changed

    def finish(self) -> Edit | None:
        """End the stroke (mouse release): the one edit it made, or ``None``."""
        return self.recorder.commit()

    def cancel(self) -> Region | None:
        """Abandon the stroke, restoring the voxels it changed; returns their box."""
        return self.recorder.cancel()
