"""Write a model folder: safetensors weights, the ONNX graph with its head, the model card.

The graph is :class:`~medseg_gui.inference.network.TumourProbability` around the trained network,
so softmax and the tumour channel are inside it; input ``image`` ``(batch, 1, D, H, W)`` float32,
output ``tumour_probability`` of the same shape, with a dynamic batch axis. It is exported with
PyTorch's ``torch.export``-based exporter into one self-contained file and, where ONNX Runtime is
installed, run once against PyTorch on random input; the largest difference is recorded.
"""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from medseg_gui.core.segmentation import MORPHOLOGICALLY_ABNORMAL_STRUCTURE, NEOPLASM
from medseg_gui.inference.model_card import LabelInfo, ModelCard
from medseg_gui.inference.network import TumourProbability, save_weights
from medseg_gui.training.config import TrainConfig

log = logging.getLogger(__name__)
OPSET = 18
TUMOUR = LabelInfo(1, "Tumour", (230, 80, 60), MORPHOLOGICALLY_ABNORMAL_STRUCTURE, NEOPLASM)


def export_onnx(net: nn.Module, roi: tuple[int, int, int], path: Path,
                card: ModelCard | None = None) -> float | None:
    """Export ``TumourProbability(net)`` to ``path``; return ONNX-vs-PyTorch max |diff| or None."""
    head = TumourProbability(copy.deepcopy(net).cpu().float()).eval()
    example = torch.randn(2, 1, *roi)
    batch = torch.export.Dim("batch", min=1, max=256)
    in_name = card.onnx_input if card else "image"
    out_name = card.onnx_output if card else "tumour_probability"
    tmp = path.with_name(f".{path.name}.tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(head, (example,), str(tmp), input_names=[in_name],
                          output_names=[out_name], opset_version=OPSET, dynamo=True,
                          dynamic_shapes=({0: batch},), external_data=False, verbose=False)
    tmp.replace(path)
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 1, *roi)
    got = session.run([out_name], {in_name: x.numpy()})[0]
    with torch.inference_mode():
        ref = head(x).numpy()
    return float(np.max(np.abs(got - ref)))


def write_model(net: nn.Module, cfg: TrainConfig, training: dict[str, Any],
                metrics: dict[str, Any]) -> ModelCard:
    """Write ``weights.safetensors``, ``model.onnx`` and ``model.json`` into ``cfg.out``."""
    folder = Path(cfg.out)
    folder.mkdir(parents=True, exist_ok=True)
    norm = cfg.normalisation
    blend: Literal["gaussian", "constant"] = "constant" if cfg.blend == "constant" else "gaussian"
    card = ModelCard(
        model_id=cfg.model_id, version=cfg.version, architecture=cfg.architecture(),
        spacing=cfg.spacing, roi_size=cfg.roi, labels=[TUMOUR], normalisation=norm,
        overlap=cfg.overlap, blend=blend, threshold=cfg.threshold, folder=folder,
        training=dict(training), metrics=dict(metrics),
    )
    cpu_net = copy.deepcopy(net).cpu().float().eval()
    tmp = folder / f".{card.weights_file}.tmp"
    save_weights(cpu_net, tmp)
    tmp.replace(card.weights_path)
    diff = export_onnx(cpu_net, cfg.roi, card.onnx_path, card)
    card.training["onnx_export"] = {
        "opset": OPSET, "exporter": f"torch.onnx (dynamo) {torch.__version__}",
        "max_abs_diff_vs_torch": diff,
    }
    card.update_hashes()
    card.save()
    return card
