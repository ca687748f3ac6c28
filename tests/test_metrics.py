"""The one Dice: exact, 1.0 for two empty masks, and MONAI's compute_dice to float32 rounding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.metrics.meandice import compute_dice

from medseg_gui.core.metrics import dice


def _monai(a: np.ndarray, b: np.ndarray) -> float:
    p, r = (torch.from_numpy(m.astype(np.float32))[None, None] for m in (a, b))
    return float(compute_dice(p, r, include_background=True, ignore_empty=False).reshape(-1)[0])


def test_dice_matches_monai() -> None:
    rng = np.random.default_rng(20)
    empty = np.zeros((9, 10, 11), dtype=bool)
    masks = [rng.random((9, 10, 11)) < f for f in (0.01, 0.2, 0.7)] + [empty]
    for a in masks:
        for b in masks:
            assert dice(a, b) == pytest.approx(_monai(a, b), abs=1e-6)
    assert dice(empty, empty) == 1.0 and dice(masks[0], empty) == 0.0
    assert dice(masks[1], masks[1]) == 1.0


def test_label_maps_count_every_non_zero_voxel() -> None:
    labels = np.array([0, 1, 2, 2])
    assert dice(labels, labels > 0) == 1.0
    assert dice(labels == 2, labels == 1) == 0.0
    assert dice([1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx(2 / 3)
