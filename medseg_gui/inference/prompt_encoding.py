"""The promptable model's input channels, built the same way in training and at inference.

The network sees, on its crop grid, eight channels (:data:`CHANNELS`): the CT in a wide window and
in a soft-tissue window (each mapped to [-1, 1]), the object's current mask (the prior: an
automatic draft, a brush mask or the previous prediction), positive and negative points, the box
and positive and negative scribbles. Points and scribble points are splatted onto their nearest
voxel and blurred with an unnormalised Gaussian (peak 1, ``sigma`` in crop voxels), as MONAI's
DeepGrow/DeepEdit guidance signals are (computed only around each point, :func:`blobs`); a box is
filled (a rectangle one voxel thick when it lies
on one slice). Everything is batched torch, so the training loop builds thousands of inputs a
second on the GPU and inference builds one on the CPU with the same code.

Coordinates here are continuous crop-array indices ``(z, y, x)`` = ``(k, j, i)``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch

CHANNELS = ("ct_wide", "ct_soft_tissue", "prior", "positive_points", "negative_points", "box",
            "positive_scribbles", "negative_scribbles")
PRIOR, POS, NEG, BOX, SCRIBBLE, NEG_SCRIBBLE = 2, 3, 4, 5, 6, 7


@dataclass(frozen=True)
class PromptConfig:
    """How a promptable model crops, encodes and zooms; stored as the card's ``prompt``.

    Parameters
    ----------
    spacing
        Crop spacing in mm at zoom 1, ``(i, j, k)``.
    patch
        Crop size in voxels, array order ``(k, j, i)`` (a multiple of 16 along each axis).
    windows
        HU windows of the two image channels, each mapped linearly to [-1, 1].
    sigma
        Gaussian width of a point or scribble point, crop voxels ``(k, j, i)``.
    max_zoom, zoom_step, max_passes, margin
        AutoZoom: when the mask touches the crop border the crop grows by ``zoom_step`` along
        that axis (up to ``max_zoom`` times the zoom-1 extent) and the model runs again, at most
        ``max_passes`` times in all; ``margin`` is the fraction of the crop kept around the
        prompts and around the object.
    threshold
        Probability at or above which a voxel is in the mask.
    """

    spacing: tuple[float, float, float] = (1.5, 1.5, 3.0)
    patch: tuple[int, int, int] = (32, 128, 128)
    windows: tuple[tuple[float, float], ...] = ((-1000.0, 1000.0), (-160.0, 240.0))
    sigma: tuple[float, float, float] = (1.0, 2.0, 2.0)
    max_zoom: float = 4.0
    zoom_step: float = 1.5
    max_passes: int = 4
    margin: float = 0.1
    threshold: float = 0.5
    channels: tuple[str, ...] = field(default=CHANNELS)

    def to_json(self) -> dict[str, Any]:
        return {"spacing": list(self.spacing), "patch": list(self.patch),
                "windows": [list(w) for w in self.windows], "sigma": list(self.sigma),
                "max_zoom": self.max_zoom, "zoom_step": self.zoom_step,
                "max_passes": self.max_passes, "margin": self.margin,
                "threshold": self.threshold, "channels": list(self.channels),
                "encoding": "points: nearest voxel, Gaussian of sigma crop voxels (peak 1); "
                            "box: filled (one voxel thick on one slice); prior: 0/1"}

    @staticmethod
    def from_json(d: dict[str, Any]) -> PromptConfig:
        channels = tuple(str(c) for c in d.get("channels", CHANNELS))
        if channels != CHANNELS:
            raise ValueError(f"prompt channels {channels} are not the ones this version "
                             f"encodes {CHANNELS}")
        return PromptConfig(
            spacing=_f3(d["spacing"]), patch=_i3(d["patch"]),
            windows=tuple((float(a), float(b)) for a, b in d["windows"]),
            sigma=_f3(d["sigma"]), max_zoom=float(d["max_zoom"]),
            zoom_step=float(d["zoom_step"]), max_passes=int(d["max_passes"]),
            margin=float(d["margin"]), threshold=float(d["threshold"]), channels=channels)


def _f3(v: Sequence[Any]) -> tuple[float, float, float]:
    return (float(v[0]), float(v[1]), float(v[2]))


def _i3(v: Sequence[Any]) -> tuple[int, int, int]:
    return (int(v[0]), int(v[1]), int(v[2]))


def image_channels(hu: torch.Tensor, windows: Sequence[tuple[float, float]]) -> torch.Tensor:
    """``(B, D, H, W)`` HU -> ``(B, len(windows), D, H, W)``, each window mapped to [-1, 1]."""
    out = [(hu.clamp(lo, hi) - (lo + hi) / 2) / ((hi - lo) / 2) for lo, hi in windows]
    return torch.stack(out, dim=1)


def _offsets(sigma: Sequence[float], device: torch.device) -> tuple[torch.Tensor,
                                                                    torch.Tensor]:
    """The voxel offsets of a blob's box (``ceil(3 sigma)`` each side) and its Gaussian."""
    radius = [max(math.ceil(3 * float(s)), 1) for s in sigma]
    axes = [torch.arange(-r, r + 1, device=device) for r in radius]
    off = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)
    s2 = torch.tensor([2 * float(s) ** 2 for s in sigma], device=device)
    return off, torch.exp(-(off.float() ** 2 / s2).sum(dim=-1))


def blobs(points: torch.Tensor, valid: torch.Tensor, shape: Sequence[int],
          sigma: Sequence[float]) -> torch.Tensor:
    """Gaussian blobs (peak 1, ``sigma`` voxels per axis) at the nearest voxels of ``points``
    ``(B, N, 3)`` (crop indices z, y, x) where ``valid`` ``(B, N)``: the sum over the distinct
    voxels, clamped to 1, i.e. a separable Gaussian blur of spikes at those voxels, computed
    only around them. Points outside the crop are dropped. Returns ``(B, D, H, W)``."""
    b = points.shape[0]
    d, h, w = (int(s) for s in shape)
    size = d * h * w
    out = torch.zeros(b * size, dtype=torch.float32, device=points.device)
    idx = torch.round(points).long()
    bounds = torch.tensor([d, h, w], device=points.device)
    ok = valid & ((idx >= 0) & (idx < bounds)).all(dim=-1)
    if bool(ok.any()):
        batch = torch.arange(b, device=points.device)[:, None].expand_as(ok)
        key = (batch * size + (idx[..., 0] * h + idx[..., 1]) * w + idx[..., 2])[ok]
        key = torch.unique(key)  # one spike per voxel, as splatting onto a grid gives
        bb, flat = key // size, key % size
        centre = torch.stack([flat // (h * w), (flat // w) % h, flat % w], dim=-1)
        off, weight = _offsets(sigma, points.device)
        where = centre[:, None] + off[None]  # (M, K, 3)
        inside = ((where >= 0) & (where < bounds)).all(dim=-1)
        target = bb[:, None] * size + (where[..., 0] * h + where[..., 1]) * w + where[..., 2]
        out.scatter_add_(0, target[inside], weight.expand(key.numel(), -1)[inside])
    return out.reshape(b, d, h, w).clamp_(0.0, 1.0)


def fill_boxes(lo: torch.Tensor, hi: torch.Tensor, valid: torch.Tensor,
               shape: Sequence[int]) -> torch.Tensor:
    """Filled boxes ``[lo, hi]`` (``(B, N, 3)`` crop indices, inclusive after rounding) where
    ``valid`` ``(B, N)``. A side shorter than a voxel is one voxel thick. Returns
    ``(B, D, H, W)``."""
    b = lo.shape[0]
    out = torch.zeros(b, *(int(s) for s in shape), dtype=torch.float32, device=lo.device)
    grids = [torch.arange(int(n), device=lo.device, dtype=torch.float32) for n in shape]
    for n in range(lo.shape[1]):
        a, z = torch.round(lo[:, n]), torch.round(hi[:, n])
        inside = [(g[None] >= a[:, i, None]) & (g[None] <= z[:, i, None])
                  for i, g in enumerate(grids)]
        cube = inside[0][:, :, None, None] & inside[1][:, None, :, None] & \
            inside[2][:, None, None, :]
        out = torch.maximum(out, (cube & valid[:, n, None, None, None]).float())
    return out


@dataclass
class EncodedPrompts:
    """Prompts of a batch in crop indices, padded to equal counts (``valid`` marks real ones)."""

    positive: torch.Tensor  # (B, N, 3)
    positive_valid: torch.Tensor  # (B, N)
    negative: torch.Tensor
    negative_valid: torch.Tensor
    box_lo: torch.Tensor  # (B, M, 3)
    box_hi: torch.Tensor
    box_valid: torch.Tensor  # (B, M)
    scribble: torch.Tensor  # (B, S, 3): every point of every positive stroke
    scribble_valid: torch.Tensor
    negative_scribble: torch.Tensor
    negative_scribble_valid: torch.Tensor

    def to(self, device: torch.device | str) -> EncodedPrompts:
        return EncodedPrompts(*(getattr(self, f.name).to(device) for f in fields(self)))

    @staticmethod
    def empty(batch: int, device: torch.device | str = "cpu") -> EncodedPrompts:
        z3 = torch.zeros(batch, 0, 3, device=device)
        z = torch.zeros(batch, 0, dtype=torch.bool, device=device)
        return EncodedPrompts(z3, z, z3, z, z3, z3, z, z3, z, z3, z)


def encode(hu: torch.Tensor, prior: torch.Tensor, prompts: EncodedPrompts,
           cfg: PromptConfig) -> torch.Tensor:
    """The network input ``(B, 8, D, H, W)`` from HU ``(B, D, H, W)``, the prior mask
    ``(B, D, H, W)`` (0/1) and the prompts in crop indices."""
    shape = hu.shape[1:]
    pos, neg, scr, nscr = (blobs(p, v, shape, cfg.sigma) for p, v in (
        (prompts.positive, prompts.positive_valid), (prompts.negative, prompts.negative_valid),
        (prompts.scribble, prompts.scribble_valid),
        (prompts.negative_scribble, prompts.negative_scribble_valid)))
    boxes = fill_boxes(prompts.box_lo, prompts.box_hi, prompts.box_valid, shape)
    return torch.cat([image_channels(hu, cfg.windows), prior[:, None].float(),
                      torch.stack([pos, neg, boxes, scr, nscr], dim=1)], dim=1)


def densify(stroke: torch.Tensor, step: float = 0.5) -> torch.Tensor:
    """The points of a polyline ``(N, 3)`` (crop indices) at most ``step`` voxels apart."""
    if stroke.shape[0] < 2:
        return stroke
    out = [stroke[:1]]
    for a, b in itertools.pairwise(stroke):
        n = max(math.ceil(float(torch.linalg.vector_norm(b - a)) / step), 1)
        t = torch.linspace(0.0, 1.0, n + 1, device=stroke.device)[1:, None]
        out.append(a + t * (b - a))
    return torch.cat(out, dim=0)
