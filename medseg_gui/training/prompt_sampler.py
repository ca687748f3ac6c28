"""Crops of prepared objects for the promptable model, cut on the training device.

Every case of a prepared set (:mod:`.interactive_data`) is held on the device once, as HU, with
each object's mask inside its box. A training crop mimics what inference does
(:func:`medseg_gui.inference.interactive.initial_crop` and AutoZoom): half are centred on a
random voxel inside the object at zoom 1, as after a first click, so large objects run past the
border; half hold the whole object with a margin at the zoom that fits it, as after a box or an
AutoZoom step. Zoom factors are drawn per axis (AutoZoom grows only the axes the object reaches),
with a little jitter, and crops are rotated in-plane (up to 15 degrees) and flipped along every
axis. The crop is sampled with trilinear interpolation (``grid_sample``); outside the scan is air,
as it is at inference. Objects are drawn with fixed odds per group (:data:`GROUP_ODDS`) so the
few tumours are not drowned by hundreds of organs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from medseg_gui.inference.prompt_encoding import PromptConfig
from medseg_gui.training.interactive_data import LoadedCase

AIR = -1024.0
# The synthetic lesions (:mod:`.synthetic_data`) take 0.22 and the real groups keep their old
# proportions (0.35 : 0.25 : 0.20 : 0.20 scaled by 0.78), so a set without synthetic cases,
# whose absent groups are dropped and the rest renormalised, trains with the old odds exactly.
GROUP_ODDS: dict[str, float] = {"sarcoma/tumour": 0.273, "openkbp/target": 0.195,
                                "openkbp/organ": 0.156, "totalseg/organ": 0.156,
                                "synthetic/lung_lesion": 0.12, "synthetic/liver_lesion": 0.10}
INTERIOR_POINTS = 512


@dataclass
class _Object:
    case: int
    lo: torch.Tensor  # box start in stored voxels (z, y, x)
    mask: torch.Tensor  # (1, 1, d+2, h+2, w+2) 0/1, zero-padded box
    extent_mm: torch.Tensor  # (z, y, x)
    inside: torch.Tensor  # (n, 3) stored voxel indices inside the object


class PatchSampler:
    """Random training crops of a prepared set's objects (see the module docstring).

    Parameters
    ----------
    cases
        The cases to train on, loaded.
    cfg
        The model's crop size, spacing and zoom limit.
    device
        Where the cases are held and crops cut.
    odds
        Odds per ``collection/kind`` group; groups absent from ``cases`` are dropped.
    """

    def __init__(self, cases: Sequence[LoadedCase], cfg: PromptConfig, device: torch.device,
                 odds: Mapping[str, float] = GROUP_ODDS, seed: int = 0) -> None:
        self.cfg, self.device = cfg, device
        rng = np.random.default_rng(seed)
        self.images: list[torch.Tensor] = []
        self.spacing: list[torch.Tensor] = []
        self.objects: list[_Object] = []
        groups: list[str] = []
        for n, case in enumerate(cases):
            self.images.append(torch.from_numpy(case.hu - np.float32(AIR))[None, None].to(device))
            sp = torch.tensor(case.info.geometry.spacing[::-1], dtype=torch.float32)  # z, y, x
            self.spacing.append(sp.to(device))
            for info, full in zip(case.info.objects, case.masks, strict=True):
                k0, k1, j0, j1, i0, i1 = info.box
                box = np.pad(full[k0:k1, j0:j1, i0:i1], 1).astype(np.float32)
                idx = np.argwhere(full)
                idx = idx[rng.choice(len(idx), min(len(idx), INTERIOR_POINTS), replace=False)]
                extent = torch.tensor([k1 - k0, j1 - j0, i1 - i0], dtype=torch.float32) * sp
                self.objects.append(_Object(
                    n, torch.tensor([k0 - 1, j0 - 1, i0 - 1], dtype=torch.float32, device=device),
                    torch.from_numpy(box)[None, None].to(device), extent.to(device),
                    torch.from_numpy(idx).float().to(device)))
                groups.append(f"{case.info.collection}/{info.kind}")
        if not self.objects:
            raise ValueError("no objects to train on")
        present = {g: w for g, w in odds.items() if g in groups}
        other = [g for g in set(groups) if g not in present]
        if other:  # a group with no odds of its own (e.g. queued corrections): equal share
            share = (sum(present.values()) or 1.0) / max(len(present), 1)
            present.update({g: share for g in other})
        counts = {g: groups.count(g) for g in present}
        weights = np.array([present[g] / counts[g] for g in groups], dtype=np.float64)
        self.weights = torch.from_numpy(weights / weights.sum()).to(device)
        self.groups = groups
        base = np.asarray(cfg.spacing[::-1], dtype=np.float32)  # z, y, x
        self.base_spacing = torch.from_numpy(base).to(device)
        d, h, w = cfg.patch
        axes = [torch.arange(n, dtype=torch.float32, device=device) - (n - 1) / 2
                for n in (d, h, w)]
        zz, yy, xx = torch.meshgrid(*axes, indexing="ij")
        self.unit = torch.stack([zz, yy, xx], dim=-1)  # (D, H, W, 3) voxel offsets from centre

    def group_odds(self) -> dict[str, float]:
        """The odds each group is drawn with in this sampler (absent groups dropped)."""
        out: dict[str, float] = {}
        for g, w in zip(self.groups, self.weights.tolist(), strict=True):
            out[g] = out.get(g, 0.0) + w
        return {g: round(v, 3) for g, v in out.items()}

    def sample(self, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``(hu, label)``: ``(B, D, H, W)`` float HU and bool masks of ``batch`` crops."""
        dev = self.device
        picks = torch.multinomial(self.weights, batch, replacement=True, generator=gen).tolist()
        base_extent = self.base_spacing * torch.tensor(self.cfg.patch, dtype=torch.float32,
                                                       device=dev)
        # the per-sample choices in one transfer: a device sync per sample would stall the
        # GPU queue between the small kernels of each crop
        draws = torch.rand(batch, 7, generator=gen, device=dev).tolist()
        hus, labels = [], []
        for n, u in zip(picks, draws, strict=True):
            obj = self.objects[n]
            sp_case = self.spacing[obj.case]
            if u[0] < 0.5:  # the whole object with a margin, at the zoom that fits it
                need = obj.extent_mm * (1.15 + 0.45 * torch.rand(3, generator=gen, device=dev))
                zoom = (need / base_extent).clamp(1.0, self.cfg.max_zoom)
                centre = (obj.lo + 1) * sp_case + obj.extent_mm / 2
                centre = centre + 0.08 * obj.extent_mm * torch.randn(3, generator=gen,
                                                                     device=dev)
            else:  # zoom 1 around a voxel inside it, as after a first click
                zoom = torch.ones(3, device=dev)
                centre = obj.inside[min(int(u[6] * len(obj.inside)), len(obj.inside) - 1)] * \
                    sp_case
            zoom = (zoom * (0.9 + 0.2 * torch.rand(3, generator=gen, device=dev))).clamp(
                0.9, self.cfg.max_zoom)
            spacing = self.base_spacing * zoom
            offsets = self.unit * spacing  # mm, (D, H, W, 3) in z, y, x
            flip = torch.tensor([-1.0 if f < 0.5 else 1.0 for f in u[1:4]], device=dev)
            offsets = offsets * flip
            if u[4] < 0.5:  # in-plane rotation about z
                a = (u[5] - 0.5) * 2 * math.radians(15)
                c, s = math.cos(a), math.sin(a)
                y, x = offsets[..., 1].clone(), offsets[..., 2].clone()
                offsets[..., 1], offsets[..., 2] = c * y - s * x, s * y + c * x
            where = centre + offsets  # mm in the case frame (z, y, x)
            img = self.images[obj.case]
            size = torch.tensor(img.shape[2:], dtype=torch.float32, device=dev)
            hus.append(_sample(img, where / sp_case, size) + AIR)
            msize = torch.tensor(obj.mask.shape[2:], dtype=torch.float32, device=dev)
            labels.append(_sample(obj.mask, where / sp_case - obj.lo, msize) >= 0.5)
        return torch.stack(hus), torch.stack(labels)


def _sample(volume: torch.Tensor, index: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Trilinear samples of ``volume`` ``(1, 1, D, H, W)`` at voxel indices ``(..., 3)``
    (z, y, x); zero outside."""
    norm = 2 * index / (size - 1).clamp_min(1.0) - 1
    grid = norm.flip(-1)[None]  # grid_sample wants (x, y, z)
    out = F.grid_sample(volume, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out[0, 0]
