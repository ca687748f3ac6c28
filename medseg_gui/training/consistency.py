"""Mean-teacher pieces for :mod:`.finetune`: views, the EMA teacher, the ramp, batch norm.

The teacher and the student see the same body-centred, randomly flipped patch of an unlabelled
volume (so their outputs line up voxel by voxel); the student's copy is then perturbed in
intensity (:func:`strong_view`). Patches are centred on voxels above ``BODY_HU`` so that the term
is not spent on the air around the patient.
"""

from __future__ import annotations

import torch
from monai.data.dataloader import DataLoader
from monai.data.dataset import Dataset
from monai.data.utils import list_data_collate
from monai.transforms.compose import Compose
from monai.transforms.croppad.dictionary import RandCropByPosNegLabeld
from monai.transforms.spatial.dictionary import RandFlipd
from monai.transforms.utility.dictionary import SelectItemsd
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from medseg_gui.inference.model_card import ModelCard
from medseg_gui.training.data import PreparedCase
from medseg_gui.training.sampling import pad_to

BODY_HU = -150.0  # above the -200 HU clip (air), below fat (about -100 HU)


def freeze_batchnorm(net: nn.Module) -> int:
    """Put every batch-norm layer in eval mode (running statistics fixed); return how many."""
    layers = [m for m in net.modules() if isinstance(m, _BatchNorm)]
    for m in layers:
        m.eval()
    return len(layers)


def rampup(step: int, length: int) -> float:
    """The sigmoid ramp ``exp(-5 (1 - t)^2)`` of Laine & Aila, 1 after ``length`` steps."""
    if length <= 0 or step >= length:
        return 1.0
    t = step / length
    return float(torch.exp(torch.tensor(-5.0 * (1.0 - t) ** 2)))


def strong_view(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Noise (sd 0.1 = 25 HU), intensity scale 0.85-1.15 and shift +-0.1 per patch."""
    b = x.shape[0]
    shape = (b, 1, 1, 1, 1)
    scale = 0.85 + 0.3 * torch.rand(shape, generator=gen, device=gen.device)
    shift = 0.2 * torch.rand(shape, generator=gen, device=gen.device) - 0.1
    noise = 0.1 * torch.randn(x.shape, generator=gen, device=gen.device)
    return x * scale.to(x) + shift.to(x) + noise.to(x)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """``teacher = decay * teacher + (1 - decay) * student`` (buffers copied)."""
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.mul_(decay).add_(s.detach(), alpha=1.0 - decay)
    for tb, sb in zip(teacher.buffers(), student.buffers(), strict=True):
        tb.copy_(sb)


def unlabeled_loader(cases: list[PreparedCase], card: ModelCard, samples_per_case: int,
                     cases_per_batch: int, workers: int) -> DataLoader:
    """Body-centred random patches of unlabelled cases with random flips (the weak view)."""
    norm, roi = card.normalisation, card.roi_size
    items = [{"image": pad_to(norm.apply(c.image), roi, norm.pad_value)[None],
              "body": pad_to(c.image > BODY_HU, roi, 0).astype("float32")[None]}
             for c in cases]
    keys = ("image", "body")
    ds = Dataset(items, transform=Compose([
        RandCropByPosNegLabeld(keys, label_key="body", spatial_size=roi, pos=1.0, neg=0.0,
                               num_samples=samples_per_case, allow_smaller=False),
        *[RandFlipd(keys, prob=0.5, spatial_axis=a) for a in range(3)],
        SelectItemsd("image")]))
    return DataLoader(ds, batch_size=min(cases_per_batch, len(items)), shuffle=True,
                      num_workers=workers, collate_fn=list_data_collate, drop_last=True,
                      persistent_workers=workers > 0)
