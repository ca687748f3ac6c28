"""Export a network to the ONNX graph the backends run, and write a model folder.

The graph is :class:`~medseg_gui.inference.network.TumourProbability` around the network, so
softmax and the tumour channel are inside it: it takes ``image`` ``(batch, 1, D, H, W)`` float32
with a dynamic batch and returns ``tumour_probability`` of the same shape (a promptable model:
``(batch, channels, D, H, W)`` with dynamic crop sizes, and one output channel). It is exported with
PyTorch's ``torch.export``-based exporter (``dynamo=True``, opset 18; the shipped model was made so)
into one self-contained file (no external data) and, where ONNX Runtime is installed, run once
against PyTorch on random input; the largest difference is recorded in the card.

Training and fine-tuning call :func:`write_model_folder` with the trained network; tests call it
with a small random-weight one.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medseg_gui.core.atomic import atomic_path
from medseg_gui.inference.model_card import ModelCard
from medseg_gui.inference.network import TumourProbability, float16_exact, save_weights

OPSET = 18
MAX_BATCH = 256  # the bound torch.export is told; ONNX records the axis only by name


def export_onnx(net: nn.Module, path: str | Path, roi_size: tuple[int, int, int], *,
                input_name: str = "image", output_name: str = "tumour_probability",
                in_channels: int = 1, crop_multiple: int = 0,
                half_weights: bool = False) -> float | None:
    """Write ``TumourProbability(net)`` to ``path`` as ONNX, atomically.

    ``net`` is the bare network (logits), on the CPU in float32, taking ``in_channels``
    channels. With ``crop_multiple`` (the network's total stride) the spatial axes are dynamic
    too, any multiple of it (a promptable model's crops); otherwise only the batch is. Returns
    the largest ``|ONNX Runtime - PyTorch|`` on a random batch of 3 (at another crop size when
    the crop is dynamic), or ``None`` when ONNX Runtime is not installed; a graph ONNX Runtime
    cannot run raises and leaves ``path`` as it was. ``half_weights`` stores the weights as
    float16 initializers cast to float32 inside the graph (for weights that are exactly float16
    values: the arithmetic and the result are those of the float32 graph, in half the bytes).
    """
    head = TumourProbability(net).eval()
    example = torch.zeros(2, in_channels, *roi_size)
    dims: dict[int, Any] = {0: torch.export.Dim("batch", min=1, max=MAX_BATCH)}
    check_size = tuple(roi_size)
    if crop_multiple:
        for axis, name in zip((2, 3, 4), ("depth", "height", "width"), strict=True):
            top = max(4 * roi_size[axis - 2] // crop_multiple, 2)
            dims[axis] = crop_multiple * torch.export.Dim(name, min=1, max=top)
        check_size = (roi_size[0] + crop_multiple, roi_size[1], roi_size[2] - crop_multiple)
    with atomic_path(path) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(head, (example,), str(tmp), input_names=[input_name],
                              output_names=[output_name], opset_version=OPSET, dynamo=True,
                              dynamic_shapes=(dims,), external_data=False, verbose=False)
        if half_weights:
            _float16_initializers(tmp)
        return _max_diff_vs_torch(head, tmp, (3, in_channels, *check_size), input_name,
                                  output_name)


def _float16_initializers(path: Path) -> None:
    """Store the float32 initializers of the graph at ``path`` that are exactly float16 values
    as float16, each behind a ``Cast`` back to float32 (ONNX Runtime and TensorRT fold the casts
    when they load the graph)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    kept, casts = [], []
    for init in graph.initializer:
        arr = numpy_helper.to_array(init) if init.data_type == TensorProto.FLOAT else None
        if arr is not None and arr.size > 1 and np.array_equal(
                arr.astype(np.float16).astype(np.float32), arr):
            half = numpy_helper.from_array(arr.astype(np.float16), f"{init.name}__float16")
            kept.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name],
                                          to=TensorProto.FLOAT))
        else:
            kept.append(init)
    nodes = list(graph.node)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _max_diff_vs_torch(head: nn.Module, onnx_path: Path, shape: tuple[int, ...],
                       input_name: str, output_name: str) -> float | None:
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    # A batch other than the example's 2 shows that the batch axis really is dynamic.
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    got = session.run([output_name], {input_name: x.numpy()})[0]
    with torch.inference_mode():
        ref = head(x).numpy()
    return float(np.max(np.abs(got - ref)))


def total_stride(architecture: dict[str, Any]) -> int:
    """The product of a network's strides: crop sizes must be a multiple of it."""
    out = 1
    for s in architecture.get("params", {}).get("strides", []):
        out *= int(max(s) if isinstance(s, list | tuple) else s)
    return out


def write_model_folder(card: ModelCard, net: nn.Module, *,
                       folder: str | Path | None = None) -> ModelCard:
    """Write weights (safetensors), ONNX and ``model.json`` for ``card`` into ``folder``.

    ``net`` is the bare network (logits), anywhere and in any mode: a float32 CPU copy is what is
    written, so the caller's network is left as it was; when every weight is exactly a float16
    value (:func:`~.network.float16_exact`) both files hold float16, losing nothing. ``folder``
    defaults to ``card.folder``. The export is recorded in ``card.training["onnx_export"]`` and
    the hashes in the card, so :func:`~medseg_gui.inference.model_card.load_card` verifies the
    result.
    """
    card.folder = Path(folder) if folder is not None else card.folder
    card.folder.mkdir(parents=True, exist_ok=True)
    cpu_net = copy.deepcopy(net).cpu().float().eval()
    half = float16_exact(cpu_net)
    save_weights(cpu_net, card.weights_path, half=half)
    diff = export_onnx(cpu_net, card.onnx_path, card.roi_size,
                       input_name=card.onnx_input, output_name=card.onnx_output,
                       in_channels=int(card.architecture.get("params", {}).get("in_channels", 1)),
                       crop_multiple=total_stride(card.architecture) if card.promptable else 0,
                       half_weights=half)
    card.training["onnx_export"] = {
        "opset": OPSET, "exporter": f"torch.onnx (dynamo) {torch.__version__}",
        "max_abs_diff_vs_torch": diff,
        "weights": "float16 (each weight is exactly a float16 value; computed in float32)"
        if half else "float32",
    }
    card.update_hashes()
    card.save()
    return card
