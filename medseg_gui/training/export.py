"""The model folder of a training or fine-tuning run: its card, written by the inference exporter.

:func:`write_model` turns a :class:`TrainConfig` and the run's record into a
:class:`~medseg_gui.inference.model_card.ModelCard`; the weights, the ONNX graph and the check of
ONNX against PyTorch are :func:`medseg_gui.inference.export.write_model_folder`'s, the one exporter.
"""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from medseg_gui.core.segmentation import MORPHOLOGICALLY_ABNORMAL_STRUCTURE, NEOPLASM
from medseg_gui.inference.export import write_model_folder
from medseg_gui.inference.model_card import LabelInfo, ModelCard
from medseg_gui.training.config import TrainConfig

TUMOUR = LabelInfo(1, "Tumour", (230, 80, 60), MORPHOLOGICALLY_ABNORMAL_STRUCTURE, NEOPLASM)


def write_model(net: nn.Module, cfg: TrainConfig, training: dict[str, Any],
                metrics: dict[str, Any], labels: list[LabelInfo] | None = None,
                intended_use: dict[str, Any] | None = None) -> ModelCard:
    """Write ``weights.safetensors``, ``model.onnx`` and ``model.json`` into ``cfg.out``.

    ``labels``: the card's output labels (default: one "Tumour"); a fine-tune passes its base's,
    so a renamed or recoded label survives it, and its ``intended_use``: fine-tuning on a site's
    corrections does not widen what the model was made for.
    """
    blend: Literal["gaussian", "constant"] = "constant" if cfg.blend == "constant" else "gaussian"
    card = ModelCard(
        model_id=cfg.model_id, version=cfg.version, architecture=cfg.architecture(),
        spacing=cfg.spacing, roi_size=cfg.roi, labels=list(labels or [TUMOUR]),
        normalisation=cfg.normalisation, overlap=cfg.overlap, blend=blend, threshold=cfg.threshold,
        training=dict(training), metrics=dict(metrics), intended_use=dict(intended_use or {}),
    )
    return write_model_folder(card, net, folder=cfg.out)
