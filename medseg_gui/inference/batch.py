"""What every backend takes: a :data:`Batch` of windows, and :func:`as_tensor` to move one.

A module of its own so that the backends (:mod:`.onnx_backend`, :mod:`.torch_backend`,
:mod:`.tensorrt_backend`) need not import :mod:`.backend`, which imports them to open one: the
import graph stays free of that circle (an import-linter contract in ``pyproject.toml``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

Batch = npt.NDArray[np.float32] | torch.Tensor


def as_tensor(batch: Batch, device: str | torch.device) -> torch.Tensor:
    """A contiguous float32 torch tensor on ``device`` (no copy when it already is one)."""
    t = torch.from_numpy(np.ascontiguousarray(batch)) if isinstance(batch, np.ndarray) else batch
    return t.to(device=device, dtype=torch.float32).contiguous()
