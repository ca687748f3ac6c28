"""Where the AI is unsure of its own draft: the connected regions of middling probability.

The slice overlay shows the model's probability itself (float16, the study grid), not its
binary entropy: a radiologist correcting the draft needs to see which way the model leaned, and
entropy gives 0.2 ("probably not tumour") and 0.8 ("probably tumour") the same colour. The band
entropy would highlight, probability in ``[low, high]`` around the 0.5 threshold, is what
:func:`uncertain_regions` lists instead, largest first, so the user can jump to each.

This runs in the inference worker's child process (:mod:`~medseg_gui.inference.worker`) and its
regions travel in the job's report as :meth:`UncertainRegion.to_dict` rows, so the GUI thread
only reads them. It stays cheap on a whole CT: the band is found on the float16 bit patterns
(no float conversion of the volume) and labelled inside its bounding box only: 0.03 s for a
sarcoma's rim in a 512x512x300 map, 200x the whole-volume scipy baseline; a map that is noise
everywhere (the worst case) takes 8 s, still in the child (``benchmarks/bench_confidence.py``,
2 CPU cores).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from medseg_gui.core.geometry import Geometry

LOW, HIGH = 0.3, 0.7
TOP = 10
# A 3x3x3 block: smaller specks are interpolation noise at the mask's edge, not a place to look.
MIN_VOXELS = 27


@dataclass(frozen=True)
class UncertainRegion:
    """One connected region of voxels with probability in ``[low, high]``.

    Attributes
    ----------
    voxels
        Number of voxels.
    volume_ml
        ``voxels`` times the voxel volume, in mL.
    mean_probability
        Mean model probability over the region's voxels.
    centroid_lps
        Centre of mass of the voxel centres, LPS mm. A shell (the usual shape: the rim of a
        tumour) has its centroid inside, off the region itself; the slices through it show the
        whole rim.
    centroid_ijk
        The voxel ``(i, j, k)`` nearest to the centroid.
    bbox_start_ijk, bbox_stop_ijk
        The region's bounding box ``[start, stop)`` in voxel indices ``(i, j, k)``.
    """

    voxels: int
    volume_ml: float
    mean_probability: float
    centroid_lps: tuple[float, float, float]
    centroid_ijk: tuple[int, int, int]
    bbox_start_ijk: tuple[int, int, int]
    bbox_stop_ijk: tuple[int, int, int]

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers and lists (for the job report and JSON)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UncertainRegion:
        def v3(key: str, kind: type) -> Any:
            return tuple(kind(x) for x in d[key])

        return cls(int(d["voxels"]), float(d["volume_ml"]), float(d["mean_probability"]),
                   v3("centroid_lps", float), v3("centroid_ijk", int),
                   v3("bbox_start_ijk", int), v3("bbox_stop_ijk", int))


def uncertain_band(probability: npt.NDArray[np.floating[Any]], low: float = LOW,
                   high: float = HIGH) -> npt.NDArray[np.bool_]:
    """Voxels with ``low <= probability <= high`` (``0 <= low <= high``).

    For float16 the bounds are rounded to float16 and compared as bit patterns: for
    non-negative halves the unsigned order of the bits is the numeric order; negative values
    (sign bit set) and NaN (bits above infinity's) fall outside, and only -0.0 needs its own
    test. That is about 9x faster than numpy's float16 comparison on a 512x512x300 CT
    (``benchmarks/bench_confidence.py``).
    """
    if not 0.0 <= low <= high:
        raise ValueError(f"need 0 <= low <= high, got low={low}, high={high}")
    if probability.dtype == np.float16:
        bits = probability.view(np.uint16)
        lo = np.float16(low).view(np.uint16)
        hi = np.float16(high).view(np.uint16)
        band: npt.NDArray[np.bool_] = (bits >= lo) & (bits <= hi)
        if lo == 0:
            band |= bits == np.float16(-0.0).view(np.uint16)
        return band
    return (probability >= low) & (probability <= high)


def uncertain_regions(probability: npt.NDArray[np.floating[Any]], geometry: Geometry,
                      low: float = LOW, high: float = HIGH, top: int = TOP,
                      min_voxels: int = MIN_VOXELS) -> list[UncertainRegion]:
    """The ``top`` largest 26-connected regions of ``low <= probability <= high``.

    Parameters
    ----------
    probability
        The model's probability on ``geometry`` (indexed ``[k, j, i]``; float16 from the
        pipeline, any float dtype works).
    geometry
        The grid, for volumes (mL) and LPS centroids.
    low, high
        The band of probabilities that count as unsure (inclusive).
    top
        At most this many regions are returned.
    min_voxels
        Smaller regions are left out.

    Returns
    -------
    list of UncertainRegion
        Largest first (ties: the region met first in array order).

    Notes
    -----
    26-connectivity (faces, edges and corners): the band around a tumour is often one voxel
    thick and runs diagonally across thick slices, and 6-connectivity would break that one
    rim into many pieces.
    """
    if probability.shape != geometry.shape:
        raise ValueError(f"probability shape {probability.shape} does not match grid "
                         f"{geometry.shape}")
    band = uncertain_band(probability, low, high)
    box = _bounding_box(band)
    if box is None:
        return []
    sub = band[box]
    labels, count = ndimage.label(sub, structure=np.ones((3, 3, 3), dtype=bool))
    ids = labels[sub]  # the band's voxels in C order, as np.nonzero lists them
    sizes = np.bincount(ids, minlength=count + 1)
    keep = [int(n) for n in np.argsort(-sizes[1:], kind="stable")[:top] + 1
            if sizes[n] >= max(min_voxels, 1)]
    if not keep:
        return []
    kji = np.nonzero(sub)
    offset = np.array([s.start for s in box], dtype=np.float64)  # k, j, i
    centre = np.stack([np.bincount(ids, weights=axis, minlength=count + 1)
                       for axis in kji], axis=1) / np.maximum(sizes, 1)[:, None] + offset
    prob = np.asarray(probability[box][sub], dtype=np.float64)
    mean_p = np.bincount(ids, weights=prob, minlength=count + 1) / np.maximum(sizes, 1)
    objects = ndimage.find_objects(labels)
    voxel_ml = float(np.prod(geometry.spacing)) / 1000.0
    out = []
    for n in keep:
        ijk = centre[n][::-1]
        slices = objects[n - 1]
        assert slices is not None  # every kept label has voxels
        start = [s.start + b.start for s, b in zip(slices, box, strict=True)][::-1]
        stop = [s.stop + b.start for s, b in zip(slices, box, strict=True)][::-1]
        x, y, z = (float(v) for v in geometry.index_to_world(ijk))
        i, j, k = (int(v) for v in np.rint(ijk))
        out.append(UncertainRegion(
            voxels=int(sizes[n]), volume_ml=int(sizes[n]) * voxel_ml,
            mean_probability=float(mean_p[n]), centroid_lps=(x, y, z), centroid_ijk=(i, j, k),
            bbox_start_ijk=(int(start[0]), int(start[1]), int(start[2])),
            bbox_stop_ijk=(int(stop[0]), int(stop[1]), int(stop[2]))))
    return out


def _bounding_box(mask: npt.NDArray[np.bool_]) -> tuple[slice, slice, slice] | None:
    """The ``[k, j, i]`` slices around a mask's voxels; ``None`` when it is empty.

    The slices holding any voxel are found first, so the row and column scans only read
    that slab (the band of one tumour covers a few percent of a CT).
    """
    ks = np.flatnonzero(mask.any(axis=(1, 2)))
    if ks.size == 0:
        return None
    slab = mask[ks[0]:ks[-1] + 1]
    js = np.flatnonzero(slab.any(axis=(0, 2)))
    iz = np.flatnonzero(slab.any(axis=(0, 1)))
    return (slice(int(ks[0]), int(ks[-1]) + 1), slice(int(js[0]), int(js[-1]) + 1),
            slice(int(iz[0]), int(iz[-1]) + 1))
