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
    """Buffers for batches of up to ``shape`` ``(B, C, D, H, W)`` float32 on GPU ``index``.

    Any batch with no more elements fits (a promptable model's crops vary in size); the output
    is the batch's shape with one channel (the model's head returns one channel per window).
    """

    def __init__(self, shape: tuple[int, ...], index: int = 0) -> None:
        import pycuda.driver as cuda

        torch.cuda.init()  # type: ignore[no-untyped-call]  # PyTorch makes the primary context first
        cuda.init()
        self.ctx = cuda.Device(index).retain_primary_context()
        self.ctx.push()
        try:
            size = int(np.prod(shape))
            self.host_in = cuda.pagelocked_empty((size,), np.float32)
            self.host_out = cuda.pagelocked_empty((size // max(int(shape[1]), 1),), np.float32)
            self.dev_in = cuda.mem_alloc(self.host_in.nbytes)
            self.dev_out = cuda.mem_alloc(self.host_out.nbytes)
            self.stream = cuda.Stream()
        finally:
            self.ctx.pop()

    @property
    def capacity(self) -> int:
        """The most input elements one batch may have."""
        return int(self.host_in.shape[0])

    def run(self, batch: npt.NDArray[np.float32], launch: Launch) -> npt.NDArray[np.float32]:
        """Copy ``batch`` in, ``launch`` on the stream, copy the result out; waits for it."""
        import pycuda.driver as cuda

        out_shape = (int(batch.shape[0]), 1, *batch.shape[2:])
        n_in, n_out = int(batch.size), int(np.prod(out_shape))
        if n_in > self.capacity or n_out > self.host_out.shape[0]:
            raise ValueError(f"batch of shape {tuple(batch.shape)} exceeds the buffers' "
                             f"{self.capacity} elements")
        self.ctx.push()
        try:
            self.host_in[:n_in] = batch.reshape(-1)
            cuda.memcpy_htod_async(self.dev_in, self.host_in[:n_in], self.stream)
            if not launch(int(self.dev_in), int(self.dev_out), int(self.stream.handle)):
                raise RuntimeError("the launch on the pycuda stream failed")
            cuda.memcpy_dtoh_async(self.host_out[:n_out], self.dev_out, self.stream)
            self.stream.synchronize()
            out: npt.NDArray[np.float32] = self.host_out[:n_out].reshape(out_shape).copy()
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
