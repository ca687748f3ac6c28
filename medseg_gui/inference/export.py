"""Export a model to the ONNX graph the backends run, and write a model folder.

The graph takes ``image`` ``(batch, 1, D, H, W)`` with a dynamic batch and returns
``tumour_probability`` ``(batch, 1, D, H, W)``: softmax and channel selection are inside it
(:class:`~medseg_gui.inference.network.TumourProbability`), so one channel leaves the network.
Training code calls :func:`write_model_folder` after fine-tuning; tests call it with a small
random-weight network.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from medseg_gui.inference.model_card import ModelCard
from medseg_gui.inference.network import TumourProbability, build_network, save_weights

OPSET = 17


def export_onnx(module: nn.Module, path: str | Path, roi_size: tuple[int, int, int], *,
                input_name: str = "image", output_name: str = "tumour_probability") -> Path:
    """Write ``module`` (windows -> probability) as ONNX with a dynamic batch, atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".export.", suffix=".onnx", dir=target.parent)
    os.close(fd)
    example = torch.zeros((2, 1, *roi_size), dtype=torch.float32)
    module = module.eval().to("cpu")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            # The TorchScript exporter: dynamic_axes is the simplest way to a dynamic batch,
            # and its graphs parse in TensorRT's ONNX parser without extra passes.
            torch.onnx.export(
                module, (example,), tmp, input_names=[input_name], output_names=[output_name],
                dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
                opset_version=OPSET, dynamo=False,
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def write_model_folder(card: ModelCard, net: nn.Module | None = None, *,
                       folder: str | Path | None = None, channel: int = 1) -> ModelCard:
    """Write weights (safetensors), ONNX and ``model.json`` for ``card`` into ``folder``.

    ``net`` is the bare network (logits); when omitted one is built from ``card.architecture``
    with fresh random weights. Hashes are recorded, so :func:`load_card` verifies the result.
    """
    target = Path(folder) if folder is not None else card.folder
    target.mkdir(parents=True, exist_ok=True)
    card.folder = target
    net = net if net is not None else build_network(card.architecture)
    save_weights(net, card.weights_path)
    export_onnx(TumourProbability(net, channel), card.onnx_path, card.roi_size,
                input_name=card.onnx_input, output_name=card.onnx_output)
    card.update_hashes()
    card.save()
    return card
