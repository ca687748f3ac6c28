"""Resumable checkpoints without pickles.

A checkpoint folder holds ``weights.safetensors`` (the network), ``optimizer.pt`` (the optimizer's
state dict: tensors, numbers and lists only, written with ``torch.save`` and read back with
``torch.load(weights_only=True)``, which refuses pickled objects) and ``state.json`` (step, epoch,
seconds trained, the split and the configuration). Each file is written to a temporary name and
renamed, and ``state.json`` last, so a run killed mid-save leaves the previous checkpoint whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medseg_gui.core.atomic import atomic_path, write_bytes
from medseg_gui.inference.network import load_weights, save_weights
from medseg_gui.io.errors import LoadError

STATE = "state.json"
WEIGHTS = "weights.safetensors"
OPTIMIZER = "optimizer.pt"
BEST = "best.safetensors"  # weights of the best periodic validation, when validating


@dataclass
class TrainState:
    """Where a run is: ``step`` optimizer steps done, ``epoch`` passes over the training cases."""

    step: int = 0
    epoch: int = 0
    seconds: float = 0.0
    total_steps: int = 0
    split: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)
    val_history: list[dict[str, Any]] = field(default_factory=list)


def save_checkpoint(folder: str | Path, net: nn.Module, optimizer: torch.optim.Optimizer,
                    state: TrainState) -> Path:
    """Write the three files of a checkpoint into ``folder``."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    save_weights(net, target / WEIGHTS)  # atomic by itself
    with atomic_path(target / OPTIMIZER) as tmp:
        torch.save(optimizer.state_dict(), tmp)
    write_bytes(target / STATE, json.dumps(state.__dict__, indent=2).encode("utf-8"))
    return target


def read_state(folder: str | Path) -> TrainState:
    path = Path(folder) / STATE
    try:
        return TrainState(**json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError as exc:
        raise LoadError(path, "no checkpoint here (state.json missing)") from exc
    except (ValueError, TypeError) as exc:
        raise LoadError(path, f"malformed checkpoint state: {exc}") from exc


def load_checkpoint(folder: str | Path, net: nn.Module,
                    optimizer: torch.optim.Optimizer | None) -> TrainState:
    """Restore ``net`` (and ``optimizer``) in place; return the saved :class:`TrainState`."""
    target = Path(folder)
    state = read_state(target)
    try:
        load_weights(net, target / WEIGHTS)
        if optimizer is not None:
            saved = torch.load(target / OPTIMIZER, map_location="cpu", weights_only=True)
            optimizer.load_state_dict(saved)
    except (OSError, RuntimeError, ValueError) as exc:
        raise LoadError(target, f"cannot restore checkpoint: {exc}") from exc
    return state
