"""PyTorch backend: the card's network from its safetensors weights, on CUDA or the CPU.

The net is built by :func:`~medseg_gui.inference.network.build_network` and wrapped in
:class:`~medseg_gui.inference.network.TumourProbability`, so it computes exactly what the exported
ONNX graph computes. ``fp16``/``bf16`` run the network under autocast (the softmax stays float32
inside the head). On CUDA the input can be put in channels-last-3d layout and the forward
compiled with ``torch.compile``; both are opt-in because compiling costs tens of seconds once.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from medseg_gui.inference.backend import Batch, as_tensor
from medseg_gui.inference.model_card import ModelCard
from medseg_gui.inference.network import TumourProbability, build_network, load_weights
from medseg_gui.io.errors import LoadError

log = logging.getLogger(__name__)

_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class TorchBackend:
    """Run a :class:`torch.nn.Module` that maps windows to the tumour probability.

    Parameters
    ----------
    card
        Model card; its weights file is hash-checked before loading.
    device
        ``"cpu"`` or ``"cuda[:N]"``.
    precision
        ``"fp32"``, ``"fp16"`` or ``"bf16"``.
    module
        Use this module instead of building one from ``card`` (tests, benchmarks).
    channels_last, compile
        CUDA speed options (see the module docstring); ``compile`` may name a
        ``torch.compile`` mode such as ``"reduce-overhead"`` (CUDA graphs).
    """

    name = "torch"

    def __init__(self, card: ModelCard | None, *, device: str = "cpu", precision: str = "fp32",
                 module: nn.Module | None = None, channels_last: bool = False,
                 compile: bool | str = False, max_batch: int = 16) -> None:
        if precision not in ("fp32", "fp16", "bf16"):
            raise LoadError("torch", f"precision {precision} is not supported by PyTorch here")
        if module is None:
            if card is None:
                raise ValueError("either a model card or a module is needed")
            card.verify(weights=True)
            module = TumourProbability(load_weights(build_network(card.architecture),
                                                   card.weights_path))
        self.device = str(torch.device(device))
        self.precision = precision
        self.max_batch = max_batch
        self.channels_last = channels_last and self.device.startswith("cuda")
        self.module = module.eval().to(self.device)
        if self.channels_last:
            self.module = self.module.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
        self._forward: Any = self.module
        if compile:
            mode = compile if isinstance(compile, str) else None
            self._forward = torch.compile(self.module, mode=mode)

    def run(self, batch: Batch) -> torch.Tensor:
        x = as_tensor(batch, self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        dtype = _DTYPES.get(self.precision)
        with torch.inference_mode():
            if dtype is None:
                out = self._forward(x)
            else:
                device_type = "cuda" if self.device.startswith("cuda") else "cpu"
                with torch.autocast(device_type=device_type, dtype=dtype):
                    out = self._forward(x)
        result: torch.Tensor = out.float()
        return result

    def close(self) -> None:
        self.module.to("cpu")
        self._forward = self.module
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
