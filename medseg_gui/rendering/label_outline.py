"""Outline mode for label overlays: keep only the label pixels on a segment's 2D border.

A slice view applies it to the labels of its current slice (only to the box around them) before
colouring, never to the whole label map.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


def outline_mask(labels: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Non-zero pixels of a 2D label image with a 4-neighbour of another value (or the edge)."""
    a = np.asarray(labels)
    edge = np.zeros(a.shape, dtype=bool)
    edge[:-1, :] |= a[:-1, :] != a[1:, :]
    edge[1:, :] |= a[1:, :] != a[:-1, :]
    edge[:, :-1] |= a[:, :-1] != a[:, 1:]
    edge[:, 1:] |= a[:, 1:] != a[:, :-1]
    edge[[0, -1], :] = True
    edge[:, [0, -1]] = True
    result: npt.NDArray[np.bool_] = edge & (a != 0)
    return result
