"""Small shared types of the editing tools: view axes, regions (bounding boxes), proposed changes.

Every tool in this package is a plain function that reads a :class:`Segmentation` (and the CT
array where intensities matter) and returns a :class:`Change`: the box it touches and the new
label values inside that box, plus, for tools that add or remove segments, the new segment table.
Tools never write the label map themselves; :class:`medseg_gui.editing.editor.SegmentEditor`
turns a change into one undoable, journaled edit. Brush strokes are the exception for speed
(they paint stamp by stamp so the overlay updates live) and go through the same editor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.segmentation import Segment, Segmentation

Region = tuple[slice, slice, slice]
"""A box of the label map, ``labelmap[region]``, in array order ``(k, j, i)``."""

LabelArray = npt.NDArray[np.unsignedinteger[Any]]
BoolArray = npt.NDArray[np.bool_]


class ViewAxis(IntEnum):
    """A slice view, by the array axis its slices are cut across.

    ``AXIAL`` slices are ``labelmap[k]`` (plane ``(j, i)``), ``CORONAL`` ``labelmap[:, j]``
    (plane ``(k, i)``), ``SAGITTAL`` ``labelmap[:, :, i]`` (plane ``(k, j)``). Points in a plane
    are given as ``(u, v)`` = (column, row) of that 2D array, i.e. the remaining continuous
    indices in ``(i, j, k)`` order: axial ``(i, j)``, coronal ``(i, k)``, sagittal ``(j, k)``.
    """

    AXIAL = 0
    CORONAL = 1
    SAGITTAL = 2


def spacing_kji(geometry: Geometry) -> tuple[float, float, float]:
    """Voxel size in mm in array order ``(k, j, i)``."""
    si, sj, sk = geometry.spacing
    return (sk, sj, si)


def region_of_bounds(lo: Sequence[int], hi: Sequence[int], shape: Sequence[int]) -> Region | None:
    """The box ``[lo, hi)`` (array order) clipped to ``shape``; ``None`` when empty."""
    a = [max(0, int(v)) for v in lo]
    b = [min(int(s), int(v)) for v, s in zip(hi, shape, strict=True)]
    if any(x >= y for x, y in zip(a, b, strict=True)):
        return None
    return (slice(a[0], b[0]), slice(a[1], b[1]), slice(a[2], b[2]))


def region_union(a: Region | None, b: Region | None) -> Region | None:
    """The smallest box containing both boxes."""
    if a is None:
        return b
    if b is None:
        return a
    k, j, i = (slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b, strict=True))
    return (k, j, i)


def region_size(region: Region) -> int:
    """Number of voxels in a box."""
    return int(np.prod([s.stop - s.start for s in region]))


def mask_bbox(mask: BoolArray, margin: Sequence[int] = (0, 0, 0)) -> Region | None:
    """Bounding box of the true voxels of a 3D mask grown by ``margin`` voxels (clipped)."""
    lo, hi = [], []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        nz = np.flatnonzero(mask.any(axis=other))
        if nz.size == 0:
            return None
        lo.append(int(nz[0]) - int(margin[axis]))
        hi.append(int(nz[-1]) + 1 + int(margin[axis]))
    return region_of_bounds(lo, hi, mask.shape)


def mm_to_voxels(mm: float, spacing: Sequence[float]) -> tuple[int, int, int]:
    """How many whole voxels ``mm`` spans along each axis (at least 1), for margins."""
    k, j, i = (max(1, int(np.ceil(abs(mm) / s))) for s in spacing)
    return (k, j, i)


@dataclass(frozen=True)
class Change:
    """A proposed edit: new label values for ``labelmap[region]`` (and maybe a new table).

    Parameters
    ----------
    name
        What the user did, shown in the Undo menu ("Fill", "Keep largest island"...).
    region
        The box the change covers (array order).
    new
        The label values the box should have afterwards, shape of the box, label map dtype.
    segments
        The segment table afterwards, or ``None`` to leave the table as it is.
    """

    name: str
    region: Region | None
    new: LabelArray | None
    segments: tuple[Segment, ...] | None = None

    def write(self, seg: Segmentation) -> None:
        """Write the change into ``seg`` without an undo step (a private copy, or the CLI's
        one-shot result; the editor's :meth:`~medseg_gui.editing.editor.SegmentEditor.apply`
        is the undoable way)."""
        if self.region is not None and self.new is not None:
            seg.labelmap[self.region] = self.new
        if self.segments is not None:
            seg.segments[:] = list(self.segments)

    @staticmethod
    def table_only(name: str, segments: Sequence[Segment]) -> Change:
        """A change of the segment table alone."""
        return Change(name, None, None, tuple(segments))
