"""TensorRT backend, written against the TensorRT 10 Python API (``import tensorrt`` is lazy).

NOT RUN: TensorRT (and pycuda) cannot be installed on the machines this was written on; the
cache logic around it (:mod:`.engine_cache`) and the calibration data (:mod:`.calibration`) are
tested, this file is not. Building: ONNX parser -> builder config with FP16 (and INT8 through an
``IInt8EntropyCalibrator2`` fed by real CT windows, with a calibration cache) -> one optimisation
profile for a dynamic batch of 1..``max_batch`` windows, best at ``opt_batch`` (a promptable
model: one crop of half to twice its card's crop size, :func:`profile_shapes`) -> serialised plan,
cached by :func:`~.engine_cache.load_or_build`. Running: ``set_input_shape`` /
``set_tensor_address`` / ``execute_async_v3``. Torch CUDA tensors are bound by pointer on torch's
current stream (no copies); numpy batches go through :class:`~.pycuda_buffers.PinnedBuffers`
(page-locked host buffers, device buffers and a pycuda stream in the CUDA primary context that
PyTorch also uses; that part is tested on a GPU with pycuda built there).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch

from medseg_gui.core.atomic import write_bytes
from medseg_gui.inference.batch import Batch
from medseg_gui.inference.engine_cache import EngineKey, load_or_build
from medseg_gui.inference.model_card import ModelCard
from medseg_gui.io.errors import LoadError

if TYPE_CHECKING:
    from medseg_gui.inference.pycuda_buffers import PinnedBuffers

log = logging.getLogger(__name__)

WORKSPACE_BYTES = 8 << 30


def engine_key(card: ModelCard, precision: str, trt_version: str, device_index: int = 0,
               max_batch: int = 16, opt_batch: int = 8) -> EngineKey:
    major, minor = torch.cuda.get_device_capability(device_index)
    return EngineKey(onnx_sha256=card.onnx_sha256,
                     gpu_name=torch.cuda.get_device_name(device_index),
                     compute_capability=f"{major}.{minor}", tensorrt_version=trt_version,
                     precision=precision, max_batch=max_batch, opt_batch=opt_batch,
                     model=card.ref)


def _make_calibrator(trt: Any, batches: Iterable[npt.NDArray[np.float32]], batch_size: int,
                     cache: Path) -> Any:
    import pycuda.driver as cuda

    cuda.init()
    context = cuda.Device(torch.cuda.current_device()).retain_primary_context()  # torch's

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batches: Iterator[npt.NDArray[np.float32]] = iter(batches)
            self.device_input: Any = None

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            try:
                b = np.ascontiguousarray(next(self.batches), dtype=np.float32)
            except StopIteration:
                return None
            context.push()
            try:
                if self.device_input is None:
                    self.device_input = cuda.mem_alloc(b.nbytes)
                cuda.memcpy_htod(self.device_input, b)
            finally:
                context.pop()
            return [int(self.device_input)]

        def read_calibration_cache(self) -> bytes | None:
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data: Any) -> None:
            write_bytes(cache, bytes(data))

    return EntropyCalibrator()


def build_plan(card: ModelCard, precision: str = "fp16", *, max_batch: int = 16,
               opt_batch: int = 8, calibration: Iterable[npt.NDArray[np.float32]] | None = None,
               calibration_cache: Path | None = None) -> bytes:
    """Build a serialised TensorRT engine for ``card``'s ONNX graph.

    ``precision`` is ``fp32``, ``fp16`` or ``int8`` (INT8 keeps FP16 for layers without INT8
    kernels and needs ``calibration`` batches ``(opt_batch, 1, *roi)`` or an existing cache).
    """
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(card.onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise LoadError(card.onnx_path, f"TensorRT cannot parse the ONNX graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    profile = builder.create_optimization_profile()
    profile.set_shape(card.onnx_input, *profile_shapes(card, max_batch, opt_batch))
    config.add_optimization_profile(profile)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        cache = calibration_cache or card.folder / "int8_calibration.cache"
        if calibration is None and not cache.is_file():
            raise LoadError(cache, "INT8 needs calibration windows or a calibration cache")
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = _make_calibrator(trt, calibration or [], opt_batch, cache)
        config.set_calibration_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine for {card.ref}")
    return bytes(serialized)


def profile_shapes(card: ModelCard, max_batch: int = 16,
                   opt_batch: int = 8) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """The (min, opt, max) input shapes of the engine's optimisation profile.

    An automatic model takes windows of ``roi_size`` with a dynamic batch. A promptable model
    takes one crop at a time, usually ``roi_size`` but any multiple of the network's stride from
    half to twice it (its ONNX graph is dynamic along all three axes).
    """
    roi = tuple(int(r) for r in card.roi_size)
    if not card.promptable:
        return (1, 1, *roi), (opt_batch, 1, *roi), (max_batch, 1, *roi)
    from medseg_gui.inference.export import total_stride

    c = int(card.architecture.get("params", {}).get("in_channels", 1))
    step = total_stride(card.architecture)
    low = tuple(max(step, (r // 2) // step * step) for r in roi)
    return (1, c, *low), (1, c, *roi), (max(max_batch // 4, 1), c, *(2 * r for r in roi))


class TensorRTBackend:
    """A TensorRT execution context over a cached (or freshly built) plan."""

    name = "tensorrt"

    def __init__(self, card: ModelCard, *, device: str = "cuda:0", precision: str = "fp16",
                 max_batch: int = 16, opt_batch: int = 8,
                 calibration: Iterable[npt.NDArray[np.float32]] | None = None) -> None:
        import tensorrt as trt

        card.verify()
        if precision not in ("fp32", "fp16", "int8"):
            raise LoadError("tensorrt", f"precision {precision} is not built by this backend")
        self.device = str(torch.device(device))
        self.index = torch.device(device).index or 0
        self.precision = precision
        self.max_batch = max_batch
        self.input_name, self.output_name = card.onnx_input, card.onnx_output
        self.shapes = profile_shapes(card, max_batch, opt_batch)
        torch.cuda.init()  # type: ignore[no-untyped-call]  # create the primary context first so pycuda and TensorRT share it
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        engines: list[Any] = []

        def validate(plan: bytes) -> bool:
            try:
                engine = self._runtime.deserialize_cuda_engine(plan)
            except RuntimeError:
                return False
            engines.append(engine)
            return engine is not None

        key = engine_key(card, precision, trt.__version__, self.index, max_batch, opt_batch)
        _plan, built = load_or_build(
            key, lambda: build_plan(card, precision, max_batch=max_batch, opt_batch=opt_batch,
                                    calibration=calibration),
            validate=validate)
        self.built = built
        self.engine = engines[-1]
        self.context = self.engine.create_execution_context()
        self._host: PinnedBuffers | None = None  # made on the first numpy batch

    def run(self, batch: Batch) -> torch.Tensor:
        shape = tuple(int(s) for s in batch.shape)
        low, _opt, high = self.shapes
        if len(shape) != len(low) or any(not a <= s <= b for a, s, b in zip(low, shape, high,
                                                                             strict=True)):
            raise ValueError(f"batch of shape {shape} is outside the engine's profile "
                             f"{low}..{high}")
        self.context.set_input_shape(self.input_name, shape)
        if isinstance(batch, torch.Tensor) and batch.is_cuda:
            x = batch.to(dtype=torch.float32).contiguous()
            y = torch.empty((shape[0], 1, *shape[2:]), dtype=torch.float32, device=x.device)
            self.context.set_tensor_address(self.input_name, x.data_ptr())
            self.context.set_tensor_address(self.output_name, y.data_ptr())
            stream = torch.cuda.current_stream(x.device)
            if not self.context.execute_async_v3(stream.cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed")
            return y
        host = batch.detach().cpu().numpy() if isinstance(batch, torch.Tensor) else batch
        out = self._run_pycuda(np.ascontiguousarray(host, dtype=np.float32))
        return torch.from_numpy(out).to(self.device)

    def _run_pycuda(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        from medseg_gui.inference.pycuda_buffers import PinnedBuffers

        if self._host is None:
            self._host = PinnedBuffers(self.shapes[2], self.index)

        def launch(d_in: int, d_out: int, stream: int) -> bool:
            self.context.set_tensor_address(self.input_name, d_in)
            self.context.set_tensor_address(self.output_name, d_out)
            return bool(self.context.execute_async_v3(stream))

        return self._host.run(batch, launch)

    def close(self) -> None:
        if self._host is not None:
            self._host.close()
            self._host = None
        del self.context
        del self.engine
