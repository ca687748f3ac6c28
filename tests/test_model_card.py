"""Model cards round-trip through JSON and refuse files that do not match their hashes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medseg_gui.core.segmentation import NEOPLASM, SegmentSource
from medseg_gui.inference.model_card import (
    LabelInfo,
    ModelCard,
    Normalisation,
    list_models,
    load_card,
)
from medseg_gui.inference.network import (
    TumourProbability,
    build_network,
    load_weights,
    save_weights,
)
from medseg_gui.io.errors import LoadError

ARCH = {"name": "UNet", "params": {"spatial_dims": 3, "in_channels": 1, "out_channels": 2,
                                   "channels": [4, 8], "strides": [2], "num_res_units": 0}}


def _card(folder: Path) -> ModelCard:
    net = build_network(ARCH)
    save_weights(net, folder / "weights.safetensors")
    (folder / "model.onnx").write_bytes(b"stand-in graph bytes for the hash check")
    card = ModelCard(
        model_id="tiny", version="0.1.0", architecture=ARCH, spacing=(1.0, 1.0, 3.0),
        roi_size=(8, 16, 16),
        labels=[LabelInfo(1, "Tumour", (230, 80, 60), NEOPLASM, NEOPLASM)], folder=folder,
    )
    card.update_hashes()
    card.save()
    return card


def test_card_round_trip_and_segments(tmp_path: Path) -> None:
    folder = tmp_path / "tiny" / "0.1.0"
    folder.mkdir(parents=True)
    card = _card(folder)
    back = load_card(folder)
    assert back == card
    seg = back.segments()[0]
    assert seg.source is SegmentSource.AUTOMATIC and seg.model == "tiny:0.1.0"
    assert [c.ref for c in list_models(tmp_path)] == ["tiny:0.1.0"]
    net = load_weights(build_network(ARCH), back.weights_path)
    out = TumourProbability(net)(torch.rand(1, 1, 8, 16, 16))
    assert out.shape == (1, 1, 8, 16, 16) and float(out.min()) >= 0 and float(out.max()) <= 1


def test_tampered_or_missing_files_are_refused(tmp_path: Path) -> None:
    card = _card(tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"something else")
    with pytest.raises(LoadError, match="does not match model card"):
        load_card(tmp_path)
    (tmp_path / "model.onnx").unlink()
    with pytest.raises(LoadError, match="missing file"):
        card.verify()
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(LoadError, match="malformed model card"):
        load_card(tmp_path)


@pytest.mark.parametrize("norm", [Normalisation(), Normalisation(-160.0, 240.0, 40.0, 200.0),
                                  Normalisation(-1000.3, 1333.7, 166.7, 1166.99)])
def test_the_one_normalisation(norm: Normalisation) -> None:
    rng = np.random.default_rng(20)
    for hu in (rng.integers(-2000, 3000, (6, 7, 8)).astype(np.int16), rng.normal(0, 800, 50)):
        out = norm.apply(hu)
        # float32 arithmetic throughout, as training, validation and inference always computed it
        x = np.clip(hu.astype(np.float32), np.float32(norm.low), np.float32(norm.high))
        assert out.dtype == np.float32 and np.array_equal(
            out, (x - np.float32(norm.mean)) / np.float32(norm.std))
    assert norm.apply(np.array([-5000.0]))[0] == pytest.approx(norm.pad_value, abs=1e-6)
