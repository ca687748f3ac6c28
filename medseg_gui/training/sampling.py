"""Patch sampling and augmentation with MONAI transforms.

Every training case is held in memory once, normalised, with its foreground/background voxel
indices computed up front (``FgBgToIndicesd``), so that ``RandCropByPosNegLabeld`` draws a patch
centred on tumour or on background with equal odds without scanning the label every time; this
balances the classes even where the tumour is under 1% of the volume. Patches are then
augmented: an in-plane rotation and scaling (``RandAffined``), flips along every axis, noise,
blur, gamma and an intensity scale and shift. One item of the dataset is one case's
``samples_per_case`` patches; ``list_data_collate`` flattens them into the batch. The
augmentation follows nnU-Net's recipe in spirit (rotation, scaling, mirroring, noise, blur, gamma,
brightness) because with about twenty training cases the network otherwise memorises them.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from monai.data.dataloader import DataLoader
from monai.data.dataset import Dataset
from monai.data.utils import list_data_collate
from monai.transforms.compose import Compose
from monai.transforms.croppad.dictionary import RandCropByPosNegLabeld
from monai.transforms.intensity.dictionary import (
    RandAdjustContrastd,
    RandGaussianNoised,
    RandGaussianSmoothd,
    RandScaleIntensityd,
    RandShiftIntensityd,
)
from monai.transforms.spatial.dictionary import RandAffined, RandFlipd
from monai.transforms.utility.dictionary import FgBgToIndicesd, SelectItemsd

from medseg_gui.inference.model_card import Normalisation
from medseg_gui.training.data import PreparedCase

KEYS = ("image", "label")


def normalise(hu: npt.NDArray[Any], norm: Normalisation) -> npt.NDArray[np.float32]:
    """The card's intensity normalisation: clip to ``[low, high]``, then ``(x - mean) / std``."""
    x = np.clip(np.asarray(hu, dtype=np.float32), norm.low, norm.high)
    return np.asarray((x - norm.mean) / norm.std, dtype=np.float32)


def pad_to(array: npt.NDArray[Any], roi: Sequence[int], value: float) -> npt.NDArray[Any]:
    """Pad a ``(D, H, W)`` array symmetrically up to at least ``roi`` with ``value``."""
    pads = [(max(r - n, 0) // 2, max(r - n, 0) - max(r - n, 0) // 2)
            for n, r in zip(array.shape, roi, strict=True)]
    if not any(a or b for a, b in pads):
        return array
    return np.pad(array, pads, mode="constant", constant_values=value)


def case_item(case: PreparedCase, norm: Normalisation, roi: Sequence[int]) -> dict[str, Any]:
    """A dataset item: channel-first normalised image, label and precomputed crop indices."""
    low = (norm.low - norm.mean) / norm.std
    item: dict[Hashable, Any] = {
        "image": pad_to(normalise(case.image, norm), roi, low)[None],
        "label": pad_to(case.label, roi, 0).astype(np.float32)[None],
        "case": case.case_id,
    }
    out = FgBgToIndicesd("label", "fg", "bg")(dict(item))
    return {str(k): v for k, v in out.items()}


def train_transforms(roi: Sequence[int], samples_per_case: int) -> Compose:
    """Crop (tumour:background 1:1), then augment; see the module docstring."""
    roi3 = tuple(int(r) for r in roi)
    return Compose([
        RandCropByPosNegLabeld(KEYS, label_key="label", spatial_size=roi3, pos=1.0, neg=1.0,
                               num_samples=samples_per_case, fg_indices_key="fg",
                               bg_indices_key="bg", allow_smaller=False),
        # Rotation about the slice axis only: the slices are 3 mm apart, an out-of-plane
        # rotation would smear them. Border padding avoids painting air into the patch.
        RandAffined(KEYS, prob=0.5, rotate_range=(math.pi / 6, 0.0, 0.0),
                    scale_range=(0.05, 0.15, 0.15), mode=("bilinear", "nearest"),
                    padding_mode="border", spatial_size=roi3, cache_grid=True),
        RandFlipd(KEYS, prob=0.5, spatial_axis=0),
        RandFlipd(KEYS, prob=0.5, spatial_axis=1),
        RandFlipd(KEYS, prob=0.5, spatial_axis=2),
        RandGaussianNoised("image", prob=0.15, std=0.05),  # 0.05 = 12.5 HU
        RandGaussianSmoothd("image", prob=0.15, sigma_x=(0.0, 0.3), sigma_y=(0.5, 1.0),
                            sigma_z=(0.5, 1.0)),
        RandAdjustContrastd("image", prob=0.15, gamma=(0.7, 1.5)),
        RandScaleIntensityd("image", factors=0.15, prob=0.5),
        RandShiftIntensityd("image", offsets=0.1, prob=0.5),
        SelectItemsd(KEYS),
    ])


def train_loader(items: list[dict[str, Any]], roi: Sequence[int], samples_per_case: int,
                 cases_per_batch: int, workers: int) -> DataLoader:
    """An endless-epoch loader of ``cases_per_batch * samples_per_case`` patches a batch."""
    ds = Dataset(items, transform=train_transforms(roi, samples_per_case))
    return DataLoader(
        ds, batch_size=cases_per_batch, shuffle=True, drop_last=len(items) >= cases_per_batch,
        num_workers=workers, collate_fn=list_data_collate, persistent_workers=workers > 0,
        pin_memory=False,
    )
