"""Dice + cross-entropy that skips voxels whose truth is unknown (label :data:`~.data.IGNORE`).

With no ignored voxel it is MONAI's ``DiceCELoss(to_onehot_y=True, softmax=True)`` to the last
bit. The Dice half is ``MaskedDiceLoss``, which multiplies the softmax and the *one-hot* target by
the known-voxel mask, so an ignored voxel adds to no channel's intersection or sums (given the
class-index target and ``to_onehot_y`` it would mask the index to 0 first and count every
ignored voxel as background); the cross-entropy half averages over the known voxels only
(``ignore_index``). The network's output at an ignored voxel therefore changes neither the loss
nor its gradient.
"""

from __future__ import annotations

import torch
from monai.losses.dice import MaskedDiceLoss
from monai.networks.utils import one_hot
from torch import nn
from torch.nn import functional

from medseg_gui.training.data import IGNORE


class KnownDiceCELoss(nn.Module):
    """Dice + CE over the known voxels of a ``(B, 1, ...)`` class-index target."""

    def __init__(self) -> None:
        super().__init__()
        self.dice = MaskedDiceLoss(softmax=True)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of ``logits`` ``(B, C, ...)`` against ``target`` ``(B, 1, ...)``."""
        known = target != IGNORE
        if not bool(known.any()):  # nothing to learn from (a patch wholly unknown)
            return logits.sum() * 0.0
        index = torch.where(known, target, torch.zeros_like(target))
        dice = self.dice(logits, one_hot(index, logits.shape[1]), mask=known.to(logits.dtype))
        ce = functional.cross_entropy(logits, target[:, 0].long(), ignore_index=IGNORE)
        loss: torch.Tensor = dice + ce
        return loss
