"""The one small protocol every inference backend follows, and how ``auto`` picks one.

A backend turns a batch of normalised windows ``(B, 1, D, H, W)`` float32 into the tumour
probability ``(B, 1, D, H, W)`` (a promptable model's batch has its prompt channels,
``(B, C, D, H, W)``, and any crop size its card allows; the output still has one channel).
Implementations: :mod:`.tensorrt_backend` (TensorRT engine), :mod:`.onnx_backend` (ONNX
Runtime, CUDA then CPU execution provider) and :mod:`.torch_backend` (PyTorch from the card's
safetensors weights, CUDA then CPU). Each is imported only when chosen, so a machine without
TensorRT or ONNX Runtime can still import this module. The backends import only
:mod:`.batch`, never this module (no import circle).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

import torch

from medseg_gui.inference.batch import Batch
from medseg_gui.inference.model_card import ModelCard
from medseg_gui.io.errors import LoadError

log = logging.getLogger(__name__)

BackendName = Literal["auto", "tensorrt", "onnxruntime", "torch"]
Precision = Literal["fp32", "fp16", "bf16", "int8"]
BACKENDS: tuple[str, ...] = ("auto", "tensorrt", "onnxruntime", "torch")


@runtime_checkable
class Backend(Protocol):
    """A loaded model that maps a batch of windows to tumour probabilities.

    Attributes
    ----------
    name
        ``"tensorrt"``, ``"onnxruntime"`` or ``"torch"``.
    precision
        ``"fp32"``, ``"fp16"``, ``"bf16"`` or ``"int8"``: what the arithmetic really ran in.
    device
        ``"cpu"`` or ``"cuda:N"``; :meth:`run` returns its result there.
    max_batch
        The most windows one :meth:`run` call accepts (TensorRT's profile maximum).
    """

    name: str
    precision: str
    device: str
    max_batch: int

    def run(self, batch: Batch) -> torch.Tensor:
        """``(B, 1, D, H, W)`` float32 (numpy or torch, any device) -> probabilities on
        :attr:`device` as a float32 torch tensor of the same shape."""
        ...

    def close(self) -> None:
        """Release device memory and sessions."""
        ...


def describe(backend: Backend | Sequence[Backend]) -> str:
    """``"tensorrt fp16 on cuda:0"`` (``"... on cuda:0+cuda:1"`` for one per GPU): what the
    user is told ran."""
    group: list[Backend] = list(backend) if isinstance(backend, Sequence) else [backend]
    return f"{group[0].name} {group[0].precision} on {devices(group)}"


def devices(backends: Sequence[Backend]) -> str:
    """``"cuda:0+cuda:1"``: the devices of a group of backends."""
    return "+".join(b.device for b in backends)


def cuda_available() -> bool:
    return bool(torch.cuda.is_available())


def module_available(name: str) -> bool:
    """Whether ``name`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def onnxruntime_cuda_available() -> bool:
    if not module_available("onnxruntime"):
        return False
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def auto_choice(device: str | None = None) -> tuple[str, str]:
    """The ``(backend, device)`` that ``auto`` takes, in the documented order.

    With a GPU: TensorRT when importable, else ONNX Runtime's CUDA provider, else PyTorch CUDA.
    Without one (or ``device="cpu"``): ONNX Runtime on the CPU when installed, else PyTorch.
    """
    gpu = device != "cpu" and cuda_available()
    if device == "cuda" and not gpu:
        raise LoadError("cuda", "--device cuda was asked for but PyTorch sees no CUDA GPU")
    if gpu:
        if module_available("tensorrt"):
            return "tensorrt", "cuda"
        if onnxruntime_cuda_available():
            return "onnxruntime", "cuda"
        return "torch", "cuda"
    return ("onnxruntime" if module_available("onnxruntime") else "torch"), "cpu"


def default_precision(device: str) -> str:
    """Half precision on a GPU (fp16 agrees with fp32 to the tested tolerance), fp32 on CPU."""
    return "fp16" if device.startswith("cuda") else "fp32"


def open_backend(
    card: ModelCard,
    name: str = "auto",
    *,
    device: str | None = None,
    precision: str | None = None,
    max_batch: int = 16,
    graphs: bool = False,
) -> Backend:
    """Load ``card``'s model in the backend ``name`` (``auto`` picks, see :func:`auto_choice`).

    ``graphs`` makes the PyTorch backend on CUDA replay CUDA graphs (see :func:`open_backends`).

    Raises
    ------
    LoadError
        The backend is not installed, the device is missing, or a model file fails its hash.
    """
    if name not in BACKENDS:
        raise LoadError(name, f"unknown backend; choose one of {', '.join(BACKENDS)}")
    if name == "auto":
        name, dev = auto_choice(device)
        if dev == "cuda" and device and device.startswith("cuda:"):
            dev = device  # keep the GPU that was asked for
    else:
        dev = device or ("cuda" if cuda_available() and name != "onnxruntime" else "cpu")
        if name == "onnxruntime" and device is None and onnxruntime_cuda_available():
            dev = "cuda"
    if dev == "cuda":
        if name != "onnxruntime" and not cuda_available():
            raise LoadError("cuda", f"backend {name} needs a CUDA GPU and none is visible")
        dev = "cuda:0"
    prec = precision or default_precision(dev)
    log.info("opening backend %s (%s) on %s for %s", name, prec, dev, card.ref)
    if name == "torch":
        from medseg_gui.inference.torch_backend import TorchBackend

        return TorchBackend(card, device=dev, precision=prec, graphs=graphs)
    if name == "onnxruntime":
        if not module_available("onnxruntime"):
            raise LoadError("onnxruntime", "ONNX Runtime is not installed: pip install onnxruntime")
        from medseg_gui.inference.onnx_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(card, device=dev, precision=prec)
    if not module_available("tensorrt"):
        raise LoadError("tensorrt", "TensorRT is not installed; use --backend auto or torch")
    from medseg_gui.inference.tensorrt_backend import TensorRTBackend

    return TensorRTBackend(card, device=dev, precision=prec, max_batch=max_batch)


def open_backends(
    card: ModelCard,
    name: str = "auto",
    *,
    device: str | None = None,
    precision: str | None = None,
    max_batch: int = 16,
    gpus: int | None = None,
) -> list[Backend]:
    """One backend per GPU that the windows will be split over (see :func:`open_backend`).

    When the choice lands on CUDA without a GPU index (``device`` None or ``"cuda"``), the model
    is loaded on each of the first ``gpus`` visible GPUs (default: all; ``CUDA_VISIBLE_DEVICES``
    picks them), one engine or session per GPU; otherwise the list holds one backend.
    """
    first = open_backend(card, name, device=device, precision=precision, max_batch=max_batch)
    count = 1
    if device in (None, "cuda") and first.device == "cuda:0":
        count = torch.cuda.device_count()
    if gpus:
        count = min(count, gpus)
    # Several GPUs: PyTorch replays CUDA graphs, one call per batch, or the lanes' threads take
    # turns launching kernels and two GPUs run slower than one. On one GPU graphs gain nothing
    # and would cost a capture per job.
    from medseg_gui.inference.torch_backend import TorchBackend

    graphs = False
    if count > 1 and isinstance(first, TorchBackend):
        first.graphs = graphs = True  # it captures on its first batch
    group = [first]
    try:
        for index in range(1, count):
            with torch.cuda.device(index):  # engines and contexts are made on their own GPU
                group.append(open_backend(card, first.name, device=f"cuda:{index}",
                                          precision=first.precision, max_batch=max_batch,
                                          graphs=graphs))
    except Exception:
        for backend in group:
            backend.close()
        raise
    return group


def cpu_fallback(card: ModelCard) -> Backend:
    """The backend used after the GPU ran out of memory even one window at a time."""
    name = "onnxruntime" if module_available("onnxruntime") else "torch"
    return open_backend(card, name, device="cpu", precision="fp32")
