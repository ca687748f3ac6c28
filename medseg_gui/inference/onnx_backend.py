"""ONNX Runtime backend: the card's verified ONNX graph, CUDA execution provider then CPU.

On CUDA, inputs that are already torch CUDA tensors are bound to the session by device pointer
(I/O binding), and the output is written straight into a torch tensor, so windows never
round-trip through host memory. ``fp16`` on ONNX Runtime would need a converted graph; this
backend runs the fp32 graph and says so (``precision`` reports ``fp32``).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from medseg_gui.inference.batch import Batch, as_tensor
from medseg_gui.inference.model_card import ModelCard

log = logging.getLogger(__name__)


class OnnxRuntimeBackend:
    """An ``onnxruntime.InferenceSession`` over ``card.onnx_path`` (hash-checked first)."""

    name = "onnxruntime"

    def __init__(self, card: ModelCard, *, device: str = "cpu", precision: str = "fp32",
                 max_batch: int = 16, threads: int | None = None) -> None:
        import onnxruntime as ort

        card.verify()
        if precision != "fp32":
            log.info("ONNX Runtime runs the fp32 graph; %s was asked for", precision)
        self.precision = "fp32"
        self.max_batch = max_batch
        self.input_name = card.onnx_input
        self.output_name = card.onnx_output
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        providers: list[Any] = ["CPUExecutionProvider"]
        want_cuda = device.startswith("cuda")
        if want_cuda and "CUDAExecutionProvider" in ort.get_available_providers():
            index = torch.device(device).index or 0
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": index}))
        self.session = ort.InferenceSession(str(card.onnx_path), options, providers=providers)
        active = self.session.get_providers()
        self.device = device if active[0] == "CUDAExecutionProvider" else "cpu"
        if want_cuda and self.device == "cpu":
            log.warning("ONNX Runtime has no CUDA execution provider here; running on the CPU")

    def run(self, batch: Batch) -> torch.Tensor:
        if self.device == "cpu":
            x = np.ascontiguousarray(
                batch.detach().cpu().numpy() if isinstance(batch, torch.Tensor) else batch,
                dtype=np.float32,
            )
            out = self.session.run([self.output_name], {self.input_name: x})[0]
            return torch.from_numpy(np.asarray(out, dtype=np.float32))
        x_t = as_tensor(batch, self.device)
        # the head returns one channel: the input's shape with one channel
        y_t = x_t.new_empty((x_t.shape[0], 1, *x_t.shape[2:]))
        index = torch.device(self.device).index or 0
        binding = self.session.io_binding()
        binding.bind_input(self.input_name, "cuda", index, np.float32, tuple(x_t.shape),
                           x_t.data_ptr())
        binding.bind_output(self.output_name, "cuda", index, np.float32, tuple(y_t.shape),
                            y_t.data_ptr())
        torch.cuda.current_stream(x_t.device).synchronize()  # x_t is written on torch's stream
        self.session.run_with_iobinding(binding)
        return y_t

    def close(self) -> None:
        del self.session
