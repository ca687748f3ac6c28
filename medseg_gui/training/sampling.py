"""Patch sampling and augmentation with MONAI transforms.

Every training case is held in memory once, normalised, with its foreground/background voxel
indices computed up front (as MONAI's ``FgBgToIndicesd`` does, but with :data:`~.data.IGNORE`
voxels in neither list), so that ``RandCropByPosNegLabeld`` draws a patch centred on tumour or on
background with equal odds without scanning the label every time; this balances the classes even
where the tumour is under 1% of the volume. A patch may still contain ignored voxels; the loss
(:mod:`.masked_loss`) skips them. Patches are then
augmented: an in-plane rotation and scaling (``RandAffined``), flips along every axis, noise,
blur, gamma and an intensity scale and shift. One item of the dataset is one case's
``samples_per_case`` patches; ``list_data_collate`` flattens them into the batch. The
augmentation follows nnU-Net's recipe in spirit (rotation, scaling, mirroring, noise, blur, gamma,
brightness) because with about twenty training cases the network otherwise memorises them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
from monai.transforms.spatial.dictionary import RandAffined, RandFlipd, RandZoomd
from monai.transforms.utility.dictionary import SelectItemsd

from medseg_gui.inference.model_card import Normalisation
from medseg_gui.training.data import PreparedCase

KEYS = ("image", "label")
# The crop reads the foreground/background indices from "label" + these postfixes.
FG, BG = "_fg", "_bg"


@dataclass(frozen=True)
class Recipe:
    """How patches are drawn and augmented, beyond the fixed pipeline below.

    ``neg_ratio`` background patches per tumour-centred one; ``bg_min_hu``: background centres
    only above that HU (None: anywhere); ``zoom``: isotropic zoom range instead of per-axis
    scaling (None: scaling). Training records it in the card (``training["recipe"]``) so that
    fine-tuning draws patches the way its base was trained.
    """

    neg_ratio: float = 1.0
    bg_min_hu: float | None = None
    zoom: tuple[float, float] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"neg_ratio": self.neg_ratio, "bg_min_hu": self.bg_min_hu,
                "zoom": list(self.zoom) if self.zoom else None}

    @classmethod
    def of_card(cls, training: Mapping[str, Any]) -> Recipe:
        """The recipe a card's ``training`` record names; the defaults for cards written
        before recipes were recorded (those were trained with the defaults)."""
        r = training.get("recipe") or {}
        zoom = r.get("zoom")
        bg = r.get("bg_min_hu")
        return cls(float(r.get("neg_ratio", 1.0)), None if bg is None else float(bg),
                   (float(zoom[0]), float(zoom[1])) if zoom else None)


def pad_to(array: npt.NDArray[Any], roi: Sequence[int], value: float) -> npt.NDArray[Any]:
    """Pad a ``(D, H, W)`` array symmetrically up to at least ``roi`` with ``value``."""
    pads = [(max(r - n, 0) // 2, max(r - n, 0) - max(r - n, 0) // 2)
            for n, r in zip(array.shape, roi, strict=True)]
    if not any(a or b for a, b in pads):
        return array
    return np.pad(array, pads, mode="constant", constant_values=value)


def case_item(case: PreparedCase, norm: Normalisation, roi: Sequence[int],
              bg_min_hu: float | None = None) -> dict[str, Any]:
    """A dataset item: channel-first normalised image, label and precomputed crop indices.

    With ``bg_min_hu`` background patches are centred only on voxels above that HU (muscle and
    other soft tissue rather than fat or air: the "hard negatives" next to a tumour).
    """
    image = pad_to(norm.apply(case.image), roi, norm.pad_value)
    label = pad_to(case.label, roi, 0)
    background = label == 0
    if bg_min_hu is not None:
        threshold = (min(max(bg_min_hu, norm.low), norm.high) - norm.mean) / norm.std
        background &= image > threshold
    return {"image": image[None], "label": label.astype(np.float32)[None], "case": case.case_id,
            "label" + FG: np.flatnonzero(label == 1), "label" + BG: np.flatnonzero(background)}


def train_transforms(roi: Sequence[int], samples_per_case: int,
                     recipe: Recipe = Recipe()) -> Compose:
    """Crop (tumour:background ``1:recipe.neg_ratio``), then augment; see the module docstring.

    ``recipe.zoom`` replaces the per-axis scaling of the affine by one isotropic zoom factor
    drawn from that range (``RandZoomd``, p=0.5), which changes a tumour's apparent size without
    distorting its shape. (``recipe.bg_min_hu`` acts earlier, in :func:`case_item`.)
    """
    roi3 = tuple(int(r) for r in roi)
    zoom = recipe.zoom
    scale = (0.05, 0.15, 0.15) if zoom is None else (0.0, 0.0, 0.0)
    resize = [] if zoom is None else [
        RandZoomd(KEYS, prob=0.5, min_zoom=zoom[0], max_zoom=zoom[1], keep_size=True,
                  mode=("trilinear", "nearest"), padding_mode="edge")]
    return Compose([
        RandCropByPosNegLabeld(KEYS, label_key="label", spatial_size=roi3, pos=1.0,
                               neg=recipe.neg_ratio, num_samples=samples_per_case,
                               fg_indices_key="label" + FG, bg_indices_key="label" + BG,
                               allow_smaller=False),
        # Rotation about the slice axis only: the slices are 3 mm apart, an out-of-plane
        # rotation would smear them. Border padding avoids painting air into the patch.
        RandAffined(KEYS, prob=0.5, rotate_range=(math.pi / 6, 0.0, 0.0),
                    scale_range=scale, mode=("bilinear", "nearest"),
                    padding_mode="border", spatial_size=roi3, cache_grid=True),
        *resize,
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


def describe(recipe: Recipe) -> tuple[str, str]:
    """(sampling, augmentation) as the model card records them, in words."""
    sampling = f"RandCropByPosNegLabeld pos=1 neg={recipe.neg_ratio:g}"
    if recipe.bg_min_hu is not None:
        sampling += f", background centres only where HU > {recipe.bg_min_hu:g}"
    zoom = recipe.zoom
    scale = ("scale +-15% in-plane, +-5% across" if zoom is None
             else f"no scaling; RandZoomd(p=0.5, isotropic {zoom[0]:g}-{zoom[1]:g})")
    augmentation = (f"RandAffined(p=0.5, in-plane rotation +-30 deg, {scale}), RandFlipd x3 "
                    "(p=0.5), RandGaussianNoised(p=0.15, 12.5 HU), RandGaussianSmoothd(p=0.15), "
                    "RandAdjustContrastd(p=0.15, gamma 0.7-1.5), RandScaleIntensityd(0.15), "
                    "RandShiftIntensityd(0.1)")
    return sampling, augmentation


def train_loader(items: list[dict[str, Any]], roi: Sequence[int], samples_per_case: int,
                 cases_per_batch: int, workers: int, recipe: Recipe = Recipe()) -> DataLoader:
    """An endless-epoch loader of ``cases_per_batch * samples_per_case`` patches a batch."""
    ds = Dataset(items, transform=train_transforms(roi, samples_per_case, recipe))
    return DataLoader(
        ds, batch_size=cases_per_batch, shuffle=True, drop_last=len(items) >= cases_per_batch,
        num_workers=workers, collate_fn=list_data_collate, persistent_workers=workers > 0,
        pin_memory=False,
    )
