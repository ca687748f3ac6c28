"""Prompts + study (+ the object's current mask) -> the object's mask: the promptable model.

:func:`predict` is the one Qt-free function behind the AI tool, ``medseg prompt`` and the
evaluation. It places a crop around the prompts (and the prior mask), resamples the study onto
it (LPS axes, the card's spacing times a zoom), encodes the prompts
(:mod:`.prompt_encoding`), runs the same backends as the automatic model and maps the
probability back onto the study grid. The crop follows the object as nnInteractive's AutoZoom
does: when the mask touches a side of the crop that is inside the image, the crop grows along
that axis (coarser spacing, same voxel count), the previous mask becomes the prior, and the
model runs again, until nothing touches or the zoom limit is reached.

Stateless: the same study, prompts and prior give the same mask.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.progress import Progress, check, no_progress
from medseg_gui.core.resample import index_map
from medseg_gui.core.volume import Volume
from medseg_gui.inference.backend import Backend
from medseg_gui.inference.model_card import ModelCard
from medseg_gui.inference.prompt_encoding import EncodedPrompts, PromptConfig, densify, encode
from medseg_gui.inference.prompts import Prompts, check_prompts

AIR = -1024.0
Region = tuple[slice, slice, slice]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Crop:
    """One pass: the crop's centre and extent (LPS mm) and so its grid."""

    center: tuple[float, float, float]
    extent: tuple[float, float, float]
    patch: tuple[int, int, int]  # (k, j, i)

    @property
    def spacing(self) -> npt.NDArray[np.float64]:
        out: npt.NDArray[np.float64] = np.asarray(self.extent) / np.asarray(self.patch[::-1],
                                                                             dtype=np.float64)
        return out

    @property
    def geometry(self) -> Geometry:
        s = self.spacing
        n = np.asarray(self.patch[::-1], dtype=np.float64)
        origin = np.asarray(self.center) - s * (n - 1) / 2
        return Geometry(self.patch, tuple(s), tuple(origin))

    def zoom(self, cfg: PromptConfig) -> float:
        """The largest zoom factor over the three axes."""
        return float(np.max(self.spacing / np.asarray(cfg.spacing)))


@dataclass
class PromptResult:
    """What :func:`predict` returns: the object's mask inside ``region`` of the study grid.

    ``covered`` marks the voxels of ``region`` the last crop reached (outside them the prior,
    if any, is kept). ``probability`` is float16 on ``region``.
    """

    region: Region
    mask: BoolArray
    covered: BoolArray
    probability: npt.NDArray[np.float16]
    passes: list[Crop]
    backend: str
    device: str
    seconds: float
    messages: list[str] = field(default_factory=list)

    def full_mask(self, shape: tuple[int, int, int],
                  prior: BoolArray | None = None) -> BoolArray:
        """The object's mask on the whole study grid (the prior outside the crop)."""
        out = np.zeros(shape, dtype=bool) if prior is None else prior.copy()
        sub = out[self.region]
        sub[self.covered] = self.mask[self.covered]
        return out

    @property
    def voxels(self) -> int:
        return int(self.mask.sum())

    def summary(self) -> str:
        zoom = max(float(np.max(c.extent)) for c in self.passes)
        text = (f"{self.voxels} voxels, {len(self.passes)} pass(es), largest crop {zoom:.0f} mm, "
                f"{self.backend} on {self.device}, {self.seconds * 1000:.0f} ms")
        return "; ".join([text, *self.messages])


def prompt_config(card: ModelCard) -> PromptConfig:
    """The card's prompt configuration; a :class:`ValueError` for an automatic model."""
    if not card.prompt:
        raise ValueError(f"{card.ref} is not a promptable model (its card has no 'prompt')")
    return PromptConfig.from_json(card.prompt)


def predict(volume: Volume, card: ModelCard, backend: Backend, prompts: Prompts,
            prior: BoolArray | None = None, *, progress: Progress = no_progress,
            autozoom: bool = True) -> PromptResult:
    """The mask of the object the prompts point at.

    Parameters
    ----------
    volume
        The study (HU).
    card, backend
        A promptable model's card and a loaded backend of it.
    prompts
        LPS-mm prompts (:mod:`.prompts`); checked with :func:`~.prompts.check_prompts`.
    prior
        The object's current mask on the study grid (the draft to refine), or ``None``.
    autozoom
        Grow the crop while the mask touches its border (see the module docstring).

    Raises
    ------
    PromptError
        Prompts outside the image, an empty box, nothing positive and no prior.
    Cancelled
        ``progress`` returned ``False``.
    """
    t0 = time.perf_counter()
    cfg = prompt_config(card)
    if prior is not None and prior.shape != volume.shape:
        raise ValueError(f"prior mask shape {prior.shape} is not the study's {volume.shape}")
    box = index_box(prior) if prior is not None else None
    has_prior = box is not None
    check_prompts(prompts, volume.geometry, has_prior=has_prior)
    bounds = None if box is None else _world_bounds(box, volume.geometry)
    crop = initial_crop(prompts, bounds, volume.geometry, cfg)
    device = torch.device(backend.device)
    passes: list[Crop] = []
    messages: list[str] = []
    with torch.inference_mode():
        prior_crop = _on_crop(prior if has_prior else None, volume.geometry, crop, device)
        while True:
            check(progress, len(passes) / cfg.max_passes, f"AI pass {len(passes) + 1}")
            prob = _run(volume, crop, prompts, prior_crop, backend, cfg, device)
            passes.append(crop)
            grown = None
            if autozoom:
                grown = grow(crop, (prob >= cfg.threshold).cpu().numpy(), volume.geometry, cfg)
            if grown is None or len(passes) >= cfg.max_passes:
                if grown is not None:
                    messages.append("the object reaches past the largest crop: check its far "
                                    "ends")
                break
            prior_crop = _between(prob, crop.geometry, grown.geometry) >= cfg.threshold
            crop = grown
        check(progress, 0.95, "mapping the mask onto the study")
        region, probability, covered = _to_study(prob, crop, volume.geometry)
    mask = probability >= np.float16(cfg.threshold)
    air = _in_air(volume, prompts)
    if not mask.any():
        messages.append("the model found no object at these prompts" + air)
    elif air:  # what it drew around a click in air is rarely what was meant
        messages.append("check the mask" + air)
    return PromptResult(region, mask, covered, probability, passes,
                        backend.name, backend.device, time.perf_counter() - t0, messages)


def _in_air(volume: Volume, prompts: Prompts) -> str:
    """`` (a click lies in air...)`` when a positive click is on a voxel below -900 HU."""
    for p in prompts.positive:
        k, j, i = np.rint(volume.geometry.world_to_index(np.asarray(p))[::-1]).astype(int)
        value = float(volume.array[k, j, i])
        if value < -900:
            return (f" (the click at {p[0]:.1f},{p[1]:.1f},{p[2]:.1f} lies in air, "
                    f"{value:.0f} HU)")
    return ""


# -- crop placement ------------------------------------------------------------------------
def base_extent(cfg: PromptConfig) -> npt.NDArray[np.float64]:
    """The crop's extent in mm at zoom 1, ``(x, y, z)``."""
    return np.asarray(cfg.spacing) * np.asarray(cfg.patch[::-1], dtype=np.float64)


Bounds = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]


def index_box(mask: BoolArray) -> tuple[tuple[int, int, int], tuple[int, int, int]] | None:
    """First and last ``(k, j, i)`` of a mask's voxels, or ``None`` when it is empty. Fast on a
    whole study: slices are tested 8 voxels at a time, and only the slices that hold the mask
    are looked at again."""
    flat = mask.reshape(mask.shape[0], -1)
    if flat.shape[1] % 8 == 0 and flat.flags.c_contiguous:
        rows = flat.view(np.uint64).any(axis=1)
    else:
        rows = flat.any(axis=1)
    ks = np.flatnonzero(rows)
    if ks.size == 0:
        return None
    sub = mask[ks[0]:ks[-1] + 1]
    js = np.flatnonzero(sub.any(axis=(0, 2)))
    is_ = np.flatnonzero(sub.any(axis=(0, 1)))
    return ((int(ks[0]), int(js[0]), int(is_[0])), (int(ks[-1]), int(js[-1]), int(is_[-1])))


def _world_bounds(box: tuple[tuple[int, int, int], tuple[int, int, int]],
                  geometry: Geometry) -> Bounds:
    (k0, j0, i0), (k1, j1, i1) = box
    corners = np.array([[i, j, k] for i in (i0, i1) for j in (j0, j1) for k in (k0, k1)],
                       dtype=np.float64)
    world = geometry.index_to_world(corners)
    return world.min(axis=0), world.max(axis=0)


def mask_bounds(mask: BoolArray, geometry: Geometry) -> Bounds | None:
    """LPS bounding box (min, max corners of the voxel centres) of a mask, or ``None``."""
    box = index_box(mask)
    return None if box is None else _world_bounds(box, geometry)


def initial_crop(prompts: Prompts, prior: Bounds | None, geometry: Geometry,
                 cfg: PromptConfig) -> Crop:
    """A crop centred on the prompts' bounding box (and the prior's LPS bounds), at least the
    zoom-1 extent, grown to hold them with a margin, at most ``max_zoom`` times the zoom-1
    extent."""
    pts = prompts.positive_points()
    if pts.shape[0] == 0:  # only negatives: they refine the prior where they are
        pts = prompts.all_points()
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    if prior is not None:
        lo, hi = np.minimum(lo, prior[0]), np.maximum(hi, prior[1])
    base = base_extent(cfg)
    need = (hi - lo + np.asarray(geometry.spacing).max()) / (1 - 2 * cfg.margin)
    extent = np.clip(need, base, base * cfg.max_zoom)
    return Crop(tuple((lo + hi) / 2), tuple(extent), cfg.patch)


def grow(crop: Crop, mask: BoolArray, geometry: Geometry, cfg: PromptConfig) -> Crop | None:
    """The next crop when ``mask`` (on ``crop``) touches a side of the crop that lies inside the
    image and can still grow; ``None`` when the object fits."""
    if not mask.any():
        return None
    study_lo, study_hi = _study_bounds(geometry)
    g = crop.geometry
    lo_c = np.asarray(g.origin)
    hi_c = lo_c + np.asarray(g.spacing) * (np.asarray(g.size_ijk) - 1)
    limit = base_extent(cfg) * cfg.max_zoom
    bounds = mask_bounds(mask, g)
    assert bounds is not None
    mlo, mhi = bounds
    center, extent = np.asarray(crop.center), np.asarray(crop.extent)
    changed = False
    for axis in range(3):  # x, y, z = i, j, k of the crop (LPS-aligned)
        arr_axis = 2 - axis
        low_face = np.take(mask, 0, axis=arr_axis).any()
        high_face = np.take(mask, mask.shape[arr_axis] - 1, axis=arr_axis).any()
        low = low_face and lo_c[axis] > study_lo[axis]  # more image beyond this side
        high = high_face and hi_c[axis] < study_hi[axis]
        if not (low or high) or extent[axis] >= limit[axis] - 1e-6:
            continue
        new = min(extent[axis] * cfg.zoom_step, limit[axis])
        keep = cfg.margin * new
        if low and high:
            c = (mlo[axis] + mhi[axis]) / 2
        elif high:  # the object runs on past the high side: keep its low end in view
            c = mlo[axis] - keep + new / 2
        else:
            c = mhi[axis] + keep - new / 2
        center[axis], extent[axis] = c, new
        changed = True
    return Crop(tuple(center), tuple(extent), crop.patch) if changed else None


def _study_bounds(geometry: Geometry) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    n = np.asarray(geometry.size_ijk) - 1
    corners = np.array([[i, j, k] for i in (0, n[0]) for j in (0, n[1]) for k in (0, n[2])],
                       dtype=np.float64)
    world = geometry.index_to_world(corners)
    return world.min(axis=0), world.max(axis=0)


# -- one pass (torch, on the backend's device) ----------------------------------------------
def _grid(source: Geometry, target: Geometry, lo: npt.NDArray[np.int64],
          size: npt.NDArray[np.int64], device: torch.device) -> torch.Tensor:
    """``grid_sample``'s grid taking every voxel of ``target`` to the sub-array ``[lo, lo+size)``
    of ``source`` (array order), ``(1, D, H, W, 3)``."""
    m = index_map(source, target)
    axes = [torch.arange(n, dtype=torch.float32, device=device) for n in target.shape]
    kji = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
    lin = torch.from_numpy(m[:3, :3].T.astype(np.float32)).to(device)
    off = torch.from_numpy((m[:3, 3] - lo).astype(np.float32)).to(device)
    idx = kji @ lin + off
    norm = 2 * idx / torch.from_numpy(np.maximum(size - 1, 1).astype(np.float32)).to(device) - 1
    return norm.flip(-1)[None]  # grid_sample takes (x, y, z) = (i, j, k)


def _sub_box(source: Geometry, target: Geometry) -> tuple[npt.NDArray[np.int64],
                                                         npt.NDArray[np.int64]]:
    """The box ``[lo, hi)`` of the source array (plus a voxel) that ``target`` covers."""
    m = index_map(source, target)
    corners = np.array([[k, j, i, 1.0] for k in (0, target.shape[0] - 1)
                        for j in (0, target.shape[1] - 1) for i in (0, target.shape[2] - 1)])
    where = (corners @ m.T)[:, :3]
    shape = np.asarray(source.shape)
    lo = np.clip(np.floor(where.min(axis=0)).astype(np.int64) - 1, 0, shape - 1)
    hi = np.clip(np.ceil(where.max(axis=0)).astype(np.int64) + 2, lo + 1, shape)
    return lo, hi


def _sample(array: npt.NDArray[Any] | torch.Tensor, source: Geometry, target: Geometry,
            device: torch.device, *, fill: float = 0.0, mode: str = "bilinear") -> torch.Tensor:
    """``array`` (on ``source``) trilinearly resampled onto ``target``, ``fill`` outside."""
    lo, hi = _sub_box(source, target)
    sub = array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    t = sub if isinstance(sub, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(sub))
    t = t.to(device=device, dtype=torch.float32) - fill
    out = F.grid_sample(t[None, None], _grid(source, target, lo, hi - lo, device), mode=mode,
                        padding_mode="zeros", align_corners=True)
    return out[0, 0] + fill


def _on_crop(prior: BoolArray | None, geometry: Geometry, crop: Crop,
             device: torch.device) -> torch.Tensor:
    if prior is None:
        return torch.zeros(crop.patch, dtype=torch.bool, device=device)
    return _sample(prior, geometry, crop.geometry, device) >= 0.5


def _between(prob: torch.Tensor, old: Geometry, new: Geometry) -> torch.Tensor:
    """A pass's probability moved onto the next, larger crop."""
    return _sample(prob, old, new, prob.device)


def crop_prompts(prompts: Prompts, geometry: Geometry) -> EncodedPrompts:
    """``prompts`` in the crop-array indices ``(z, y, x)`` of ``geometry`` (batch of one)."""

    def zyx(points: Any) -> torch.Tensor:
        arr = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        return torch.from_numpy(geometry.world_to_index(arr)[:, ::-1].copy()).float()

    def strokes(group: tuple[tuple[tuple[float, float, float], ...], ...]) -> torch.Tensor:
        parts = [densify(zyx(s)) for s in group]
        return torch.cat(parts, dim=0) if parts else torch.zeros(0, 3)

    pos, neg = zyx(prompts.positive), zyx(prompts.negative)
    lo = zyx([b.lo for b in prompts.boxes])
    hi = zyx([b.hi for b in prompts.boxes])
    box_lo, box_hi = torch.minimum(lo, hi), torch.maximum(lo, hi)  # a flip of the crop axes
    scr, nscr = strokes(prompts.scribbles), strokes(prompts.negative_scribbles)

    def one(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return t[None], torch.ones(1, t.shape[0], dtype=torch.bool)

    (p, pv), (n, nv), (bl, bv), (s, sv), (ns, nsv) = (one(pos), one(neg), one(box_lo),
                                                     one(scr), one(nscr))
    return EncodedPrompts(p, pv, n, nv, bl, box_hi[None], bv, s, sv, ns, nsv)


def _run(volume: Volume, crop: Crop, prompts: Prompts, prior: torch.Tensor, backend: Backend,
         cfg: PromptConfig, device: torch.device) -> torch.Tensor:
    g = crop.geometry
    hu = _sample(volume.array, volume.geometry, g, device, fill=AIR)
    encoded = crop_prompts(prompts, g).to(device)
    x = encode(hu[None], prior[None], encoded, cfg)
    out = backend.run(x)
    return out[0, 0].float().to(device)


def _to_study(prob: torch.Tensor, crop: Crop,
              geometry: Geometry) -> tuple[Region, npt.NDArray[np.float16], BoolArray]:
    """The crop's probability on the box of the study grid it covers, and which of those
    voxels it really covers (all but the edges for an LPS-aligned study)."""
    g = crop.geometry
    n = np.asarray(g.size_ijk) - 1
    corners = np.array([[i, j, k] for i in (-0.5, n[0] + 0.5) for j in (-0.5, n[1] + 0.5)
                        for k in (-0.5, n[2] + 0.5)], dtype=np.float64)
    ijk = geometry.world_to_index(g.index_to_world(corners))
    lo = np.clip(np.floor(ijk.min(axis=0)).astype(int), 0, np.asarray(geometry.size_ijk) - 1)
    hi = np.clip(np.ceil(ijk.max(axis=0)).astype(int) + 1, lo + 1, geometry.size_ijk)
    sub = geometry.crop(lo, hi)
    grid = _grid(g, sub, np.zeros(3, np.int64), np.asarray(g.shape), prob.device)
    covered = (grid.abs() <= 1 + 1 / torch.from_numpy(np.maximum(np.asarray(g.shape[::-1]) - 1,
                                                                 1).astype(np.float32)).to(
        prob.device)).all(dim=-1)[0]
    probability = F.grid_sample(prob[None, None], grid.clamp(-1, 1), mode="bilinear",
                                padding_mode="border", align_corners=True)[0, 0]
    probability = torch.where(covered, probability, torch.zeros_like(probability))
    region = (slice(int(lo[2]), int(hi[2])), slice(int(lo[1]), int(hi[1])),
              slice(int(lo[0]), int(hi[0])))
    return region, probability.half().cpu().numpy(), covered.cpu().numpy()
