"""Overlap of two masks: the one Dice of the app, its training and its benchmarks."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def dice(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Dice coefficient ``2 |A ∩ B| / (|A| + |B|)`` of two masks of one shape.

    Parameters
    ----------
    a, b
        Masks; a non-zero voxel is inside.

    Returns
    -------
    float
        In ``[0, 1]``; 1.0 when both masks are empty (nothing to find, nothing found), 0.0 when
        only one is. Counted in integers, so exact; MONAI's ``compute_dice`` with
        ``ignore_empty=False`` agrees to float32 rounding.
    """
    ma, mb = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    total = int(np.count_nonzero(ma)) + int(np.count_nonzero(mb))
    return 1.0 if total == 0 else 2.0 * int(np.count_nonzero(ma & mb)) / total
