"""Resampling an array from one grid onto another (scipy), cropping the source first.

Used wherever a study, a mask or a probability moves between grids without SimpleITK: prepared
training cases, validation on the original grid, and the promptable model's crops. Only the part
of the source that the target covers (plus one voxel) is interpolated, so a 128 x 128 x 32 crop of
a 512 x 512 x 300 study costs what the crop costs, not what the study costs.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from medseg_gui.core.geometry import Geometry

FloatArray = npt.NDArray[np.float32]
_FLIP = np.eye(4)[[2, 1, 0, 3]]  # (i, j, k) <-> (k, j, i)


def index_map(source: Geometry, target: Geometry) -> npt.NDArray[np.float64]:
    """4x4 matrix taking a target array index ``(k, j, i, 1)`` to the source array index."""
    m = np.linalg.inv(source.affine) @ target.affine
    out: npt.NDArray[np.float64] = _FLIP @ m @ _FLIP
    return out


def resample_array(array: npt.NDArray[Any], source: Geometry, target: Geometry,
                   order: int = 1, *, mode: Literal["nearest", "constant"] = "nearest",
                   cval: float = 0.0) -> FloatArray:
    """Resample ``array`` (on ``source``) onto ``target``; linear (``order=1``) by default.

    Parameters
    ----------
    mode
        ``"nearest"``: points outside the source take the nearest edge value; ``"constant"``:
        they take ``cval``.
    """
    m = index_map(source, target)
    shape = np.asarray(array.shape)
    corners = np.array([[k, j, i, 1.0] for k in (0, target.shape[0] - 1)
                        for j in (0, target.shape[1] - 1) for i in (0, target.shape[2] - 1)])
    where = (corners @ m.T)[:, :3]
    lo = np.clip(np.floor(where.min(axis=0)).astype(int) - 1, 0, shape - 1)
    hi = np.clip(np.ceil(where.max(axis=0)).astype(int) + 2, lo + 1, shape)
    sub = np.asarray(array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], dtype=np.float32)
    offset = m[:3, 3] - lo
    out = ndimage.affine_transform(sub, m[:3, :3], offset=offset, output_shape=target.shape,
                                   order=order, mode=mode, cval=cval, prefilter=order > 1)
    return np.asarray(out, dtype=np.float32)

