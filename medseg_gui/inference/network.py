"""Build the segmentation network a model card describes, and its export head.

The network itself comes from MONAI (``architecture = {"name": "UNet", "params": {...}}`` names a
class in ``monai.networks.nets``). :class:`TumourProbability` wraps it so that the softmax and the
choice of the tumour channel happen inside the graph: the exported ONNX (and so a TensorRT
engine) returns one float channel, which halves what leaves the GPU and what is blended.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from medseg_gui.core.atomic import atomic_path


def build_network(architecture: dict[str, Any]) -> nn.Module:
    """Instantiate ``monai.networks.nets.<name>(**params)``."""
    from monai.networks import nets

    name = str(architecture["name"])
    cls = getattr(nets, name, None)
    if cls is None:
        raise ValueError(f"unknown MONAI network {name!r}")
    net: nn.Module = cls(**architecture.get("params", {}))
    return net


class TumourProbability(nn.Module):
    """``logits (B, C, D, H, W)`` -> ``softmax[:, channel:channel+1]`` (B, 1, D, H, W)."""

    def __init__(self, net: nn.Module, channel: int = 1) -> None:
        super().__init__()
        self.net = net
        self.channel = channel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        return torch.softmax(logits.float(), dim=1)[:, self.channel : self.channel + 1]


def load_weights(net: nn.Module, path: str | Path) -> nn.Module:
    """Load safetensors weights (never pickles) into ``net``; strict about names and shapes
    (float16 files are widened to the network's float32)."""
    from safetensors.torch import load_file

    net.load_state_dict(load_file(str(path)), strict=True)
    return net


def float16_exact(net: nn.Module) -> bool:
    """Whether every floating-point weight of ``net`` is exactly a float16 value (weights that
    came back from a GPU machine rounded to float16 are): then float16 files lose nothing."""
    return all(not t.is_floating_point() or bool(torch.equal(t.half().to(t.dtype), t))
               for t in net.state_dict().values())


def save_weights(net: nn.Module, path: str | Path, *, half: bool = False) -> None:
    """Write ``net``'s state dict as safetensors, atomically (old file or new, never half).

    ``half`` stores floating-point tensors as float16 (half the bytes; exact when
    :func:`float16_exact`); :func:`load_weights` widens them back into the network.
    """
    from safetensors.torch import save_file

    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in net.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))
