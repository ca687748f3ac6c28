"""INT8 calibration data: real CT windows, preprocessed exactly as inference preprocesses them.

TensorRT's entropy calibrator needs batches that look like what the engine will see, so each
study goes through :func:`~.pipeline.prepare` (resample, normalise) and contributes windows at
the pipeline's own window positions, leaving out windows of air (they would pull the activation
ranges towards a constant image).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import numpy.typing as npt

from medseg_gui.core.volume import Volume
from medseg_gui.inference.model_card import ModelCard
from medseg_gui.inference.pipeline import AIR_HU, prepare
from medseg_gui.inference.sliding import pad_amounts, window_starts


def calibration_windows(volumes: Iterable[Volume], card: ModelCard
                        ) -> Iterator[npt.NDArray[np.float32]]:
    """Normalised ``(1, D, H, W)`` windows with some body in them, study after study."""
    roi = card.roi_size
    for volume in volumes:
        on_grid, image = prepare(volume, card)
        hu = on_grid.array
        pads = pad_amounts(image.shape, roi)
        if any(p for pair in pads for p in pair):
            image = np.pad(image, pads, constant_values=0.0)
            hu = np.pad(hu, pads, constant_values=-1000)
        for a, b, c in window_starts(image.shape, roi, card.overlap):
            sl = (slice(a, a + roi[0]), slice(b, b + roi[1]), slice(c, c + roi[2]))
            if (hu[sl] >= AIR_HU).any():
                yield image[sl][None].astype(np.float32, copy=False)


def calibration_batches(volumes: Iterable[Volume], card: ModelCard, batch_size: int = 8,
                        max_batches: int = 64) -> Iterator[npt.NDArray[np.float32]]:
    """``(batch_size, 1, D, H, W)`` batches for ``IInt8EntropyCalibrator2.get_batch``."""
    batch: list[npt.NDArray[np.float32]] = []
    produced = 0
    for window in calibration_windows(volumes, card):
        batch.append(window)
        if len(batch) == batch_size:
            yield np.stack(batch)
            batch, produced = [], produced + 1
            if produced >= max_batches:
                return
