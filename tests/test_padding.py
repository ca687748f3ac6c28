"""The automatic pipeline computes what the validator computes: a study shorter than the model's
window is padded as training and validation pad it, and a longer one is windowed the same way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg_gui.inference.backend import open_backend
from medseg_gui.inference.model_card import load_card
from medseg_gui.inference.pipeline import prepare, segment
from medseg_gui.io.loader import load_volume
from medseg_gui.training.evaluate import onnx_predictor, predict_probability

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "engines" / "sts-tumour-unet" / "1.1.0"


@pytest.mark.parametrize("slices", [(16, 34), None], ids=["short", "whole"])
def test_segment_gets_the_validators_probability(slices: tuple[int, int] | None) -> None:
    """``segment()`` and the validator, on a study shorter than the window (18 slices: padded)
    and on the whole 51-slice demo study (several windows along z), give one probability."""
    card = load_card(SHIPPED)
    vol = load_volume(ROOT / "resources" / "demo" / "STS_008" / "dicom" / "image")
    if slices is None:
        short = vol
        assert short.shape[0] > card.roi_size[0] * 3.0 / 3.27  # more slices than the window
    else:
        size_i, size_j = vol.geometry.size_ijk[:2]
        short = vol.crop((0, 0, slices[0]), (size_i, size_j, slices[1]))
        assert short.shape[0] == 18 < card.roi_size[0] * 3.0 / 3.27  # fewer than the window
    on_grid, _ = prepare(short, card)
    if slices is not None:
        assert on_grid.shape[0] < card.roi_size[0]  # padded on the model's grid
    backend = open_backend(card, "onnxruntime", device="cpu")
    ours = segment(short, card, backend, skip_air=False)
    backend.close()
    # the validator's path (MONAI sliding windows, padded with the normalised low value) on the
    # same model grid, mapped back the same way
    ref = predict_probability(on_grid.array, onnx_predictor(card, threads=2), card.roi_size,
                              card.normalisation, overlap=card.overlap, blend=card.blend)
    from medseg_gui.core.volume import Volume

    back = Volume(ref, on_grid.geometry).resample(short.geometry, interpolation="linear",
                                                  default_value=0.0).array
    diff = np.abs(ours.probability.astype(np.float32) - back)
    assert float(diff.mean()) < 2e-3 and float(diff.max()) < 0.05
