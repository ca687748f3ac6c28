"""PyTorch backend: the card's network from its safetensors weights, on CUDA or the CPU.

The net is built by :func:`~medseg_gui.inference.network.build_network` and wrapped in
:class:`~medseg_gui.inference.network.TumourProbability`, so it computes exactly what the exported
ONNX graph computes. ``fp16``/``bf16`` run the network under autocast (the softmax stays float32
inside the head). On CUDA the input can be put in channels-last-3d layout and the forward
compiled with ``torch.compile``; both are opt-in because compiling costs tens of seconds once.

With ``graphs`` (CUDA only) the forward for a batch size is captured once in a CUDA graph and
each later call is one replay: the Python launch work per batch all but disappears, which is what
lets one thread per GPU keep several GPUs busy (measured: without graphs two GPUs were slower
than one, the lanes' threads taking turns on the interpreter lock to launch kernels). A smaller
batch is padded to the captured size; a capture that fails falls back to plain calls, logged.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from medseg_gui.inference.batch import Batch, as_tensor
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
    channels_last, compile, graphs
        CUDA speed options (see the module docstring); ``compile`` may name a
        ``torch.compile`` mode.
    """

    name = "torch"

    def __init__(self, card: ModelCard | None, *, device: str = "cpu", precision: str = "fp32",
                 module: nn.Module | None = None, channels_last: bool = False,
                 compile: bool | str = False, graphs: bool = False,
                 max_batch: int = 16) -> None:
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
        self.graphs = graphs and self.device.startswith("cuda")
        self._graph: _GraphedForward | None = None

    def run(self, batch: Batch) -> torch.Tensor:
        x = as_tensor(batch, self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        if not self.graphs:
            return self._call(x)
        if self._graph is None or x.shape[0] > self._graph.batch:
            try:
                self._graph = _GraphedForward(self._call, x)
            except RuntimeError as exc:  # e.g. an op that cannot be captured
                log.warning("CUDA graph capture failed on %s, running without: %s",
                            self.device, exc)
                self.graphs, self._graph = False, None
                return self._call(x)
        return self._graph(x)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        dtype = _DTYPES.get(self.precision)
        with torch.inference_mode():
            if dtype is None:
                out = self._forward(x)
            else:
                device_type = "cuda" if self.device.startswith("cuda") else "cpu"
                # no cast cache: it would hold casts across CUDA graph replays
                with torch.autocast(device_type=device_type, dtype=dtype, cache_enabled=False):
                    out = self._forward(x)
            result: torch.Tensor = out.float()
        return result

    def close(self) -> None:
        self._graph = None
        self.module.to("cpu")
        self._forward = self.module
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()


class _GraphedForward:
    """``forward`` for batches of up to ``batch`` windows, captured in one CUDA graph.

    Input and output live in static tensors; a call copies its windows in, replays the graph and
    returns a copy of the output rows it asked for.
    """

    def __init__(self, forward: Any, example: torch.Tensor) -> None:
        self.batch = int(example.shape[0])
        device = example.device
        with torch.cuda.device(device):
            self.input = example.clone()
            side = torch.cuda.Stream(device)  # type: ignore[no-untyped-call]
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):  # warm-up off the capture: autotuning, compiling
                for _ in range(2):
                    forward(self.input)
            torch.cuda.current_stream(device).wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            # torch.cuda.graph's default capture stream is made once, on whichever GPU was
            # current then: a graph for another GPU needs a stream of its own device. The lanes
            # of the other GPUs keep calling CUDA from their threads meanwhile, which the
            # default "global" capture mode counts as an error in this capture.
            with torch.cuda.graph(self.graph, stream=torch.cuda.Stream(device),  # type: ignore[no-untyped-call]
                                  capture_error_mode="thread_local"):
                self.output: torch.Tensor = forward(self.input)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = int(x.shape[0])
        self.input[:n].copy_(x)  # rows past n keep old windows: their outputs are not used
        self.graph.replay()
        return self.output[:n].clone()
