"""Page-locked host buffers, device buffers and a stream from pycuda, in PyTorch's CUDA context.

What the TensorRT backend uses for batches that arrive as numpy arrays (torch CUDA tensors are
bound by pointer instead): the batch is copied into a page-locked buffer, sent to the device
asynchronously on a pycuda stream, an engine runs on that stream with the two device pointers,
and the result comes back the same way. The buffers live in the GPU's *primary* context, the one
PyTorch uses, so device pointers from either library are valid in the other. ``import pycuda``
is lazy: this module imports without it.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import numpy.typing as npt
import torch

# launch(device_input_ptr, device_output_ptr, stream_handle) -> bool (False: the launch failed)
Launch = Callable[[int, int, int], bool]


class PinnedBuffers:
    """Buffers for batches of up to ``shape[0]`` items of ``shape[1:]`` float32 on GPU ``index``.

    Output and input have the same shape (the model's head returns one channel per window).
    """

    def __init__(self, shape: tuple[int, ...], index: int = 0) -> None:
        import pycuda.driver as cuda

        torch.cuda.init()  # type: ignore[no-untyped-call]  # PyTorch makes the primary context first
        cuda.init()
        self.ctx = cuda.Device(index).retain_primary_context()
        self.ctx.push()
        try:
            self.host_in = cuda.pagelocked_empty(shape, np.float32)
            self.host_out = cuda.pagelocked_empty(shape, np.float32)
            self.dev_in = cuda.mem_alloc(self.host_in.nbytes)
            self.dev_out = cuda.mem_alloc(self.host_out.nbytes)
            self.stream = cuda.Stream()
        finally:
            self.ctx.pop()

    @property
    def capacity(self) -> int:
        return int(self.host_in.shape[0])

    def run(self, batch: npt.NDArray[np.float32], launch: Launch) -> npt.NDArray[np.float32]:
        """Copy ``batch`` in, ``launch`` on the stream, copy the result out; waits for it."""
        import pycuda.driver as cuda

        n = int(batch.shape[0])
        if n > self.capacity:
            raise ValueError(f"batch of {n} exceeds the buffers' {self.capacity}")
        self.ctx.push()
        try:
            self.host_in[:n] = batch
            cuda.memcpy_htod_async(self.dev_in, self.host_in[:n], self.stream)
            if not launch(int(self.dev_in), int(self.dev_out), int(self.stream.handle)):
                raise RuntimeError("the launch on the pycuda stream failed")
            cuda.memcpy_dtoh_async(self.host_out[:n], self.dev_out, self.stream)
            self.stream.synchronize()
            out: npt.NDArray[np.float32] = self.host_out[:n].copy()
            return out
        finally:
            self.ctx.pop()

    def close(self) -> None:
        self.ctx.push()
        try:
            self.dev_in.free()
            self.dev_out.free()
        finally:
            self.ctx.pop()
        self.ctx.detach()  # releases this retain of the primary context, not PyTorch's


def as_torch(pointer: int, shape: tuple[int, ...], device: int = 0) -> torch.Tensor:
    """A float32 torch tensor over device memory at ``pointer`` (no copy), e.g. a pycuda
    buffer, through ``__cuda_array_interface__``."""
    view = SimpleNamespace(__cuda_array_interface__={
        "shape": shape, "typestr": "<f4", "data": (pointer, False), "version": 3,
        "strides": None, "stream": None})
    return torch.as_tensor(view, device=f"cuda:{device}")
