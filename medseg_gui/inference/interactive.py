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

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.progress import Progress, check, no_progress
from medseg_gui.core.resample import resample_array
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
    has_prior = prior is not None and bool(prior.any())
    check_prompts(prompts, volume.geometry, has_prior=has_prior)
    if prior is not None and prior.shape != volume.shape:
        raise ValueError(f"prior mask shape {prior.shape} is not the study's {volume.shape}")
    crop = initial_crop(prompts, prior if has_prior else None, volume.geometry, cfg)
    passes: list[Crop] = []
    prior_crop = _prior_on(prior if has_prior else None, volume, crop)
    messages: list[str] = []
    while True:
        check(progress, len(passes) / cfg.max_passes, f"AI pass {len(passes) + 1}")
        prob = _run(volume, crop, prompts, prior_crop, backend, cfg)
        passes.append(crop)
        grown = grow(crop, prob >= cfg.threshold, volume.geometry, cfg) if autozoom else None
        if grown is None or len(passes) >= cfg.max_passes:
            if grown is not None:
                messages.append("the object reaches past the largest crop: check its far ends")
            break
        prior_crop = resample_array(prob, crop.geometry, grown.geometry, order=1,
                                    mode="constant", cval=0.0) >= cfg.threshold
        crop = grown
    check(progress, 0.95, "mapping the mask onto the study")
    region, probability, covered = _to_study(prob, crop, volume.geometry)
    mask = probability >= cfg.threshold
    if not mask.any():
        messages.append("the model found no object at these prompts")
    return PromptResult(region, mask, covered, probability.astype(np.float16), passes,
                        backend.name, backend.device, time.perf_counter() - t0, messages)


# -- crop placement ------------------------------------------------------------------------
def base_extent(cfg: PromptConfig) -> npt.NDArray[np.float64]:
    """The crop's extent in mm at zoom 1, ``(x, y, z)``."""
    return np.asarray(cfg.spacing) * np.asarray(cfg.patch[::-1], dtype=np.float64)


def mask_bounds(mask: BoolArray, geometry: Geometry) -> tuple[npt.NDArray[np.float64],
                                                                npt.NDArray[np.float64]] | None:
    """LPS bounding box (min, max corners of the voxel centres) of a mask, or ``None``."""
    idx = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax))) for ax in
           range(3)]
    if any(i.size == 0 for i in idx):
        return None
    (k0, k1), (j0, j1), (i0, i1) = ((int(i[0]), int(i[-1])) for i in idx)
    corners = np.array([[i, j, k] for i in (i0, i1) for j in (j0, j1) for k in (k0, k1)],
                       dtype=np.float64)
    world = geometry.index_to_world(corners)
    return world.min(axis=0), world.max(axis=0)


def initial_crop(prompts: Prompts, prior: BoolArray | None, geometry: Geometry,
                 cfg: PromptConfig) -> Crop:
    """A crop centred on the prompts' bounding box (and the prior's), at least the zoom-1
    extent, grown to hold them with a margin, at most ``max_zoom`` times the zoom-1 extent."""
    pts = prompts.positive_points()
    if pts.shape[0] == 0:  # only negatives: they refine the prior where they are
        pts = prompts.all_points()
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    if prior is not None:
        bounds = mask_bounds(prior, geometry)
        if bounds is not None:
            lo, hi = np.minimum(lo, bounds[0]), np.maximum(hi, bounds[1])
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


# -- one pass ------------------------------------------------------------------------------
def _prior_on(prior: BoolArray | None, volume: Volume, crop: Crop) -> BoolArray:
    if prior is None:
        return np.zeros(crop.patch, dtype=bool)
    return resample_array(prior.astype(np.float32), volume.geometry, crop.geometry, order=1,
                          mode="constant", cval=0.0) >= 0.5


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


def _run(volume: Volume, crop: Crop, prompts: Prompts, prior: BoolArray, backend: Backend,
         cfg: PromptConfig) -> npt.NDArray[np.float32]:
    g = crop.geometry
    hu = resample_array(volume.array, volume.geometry, g, order=1, mode="constant", cval=AIR)
    with torch.inference_mode():
        x = encode(torch.from_numpy(hu)[None], torch.from_numpy(prior)[None],
                   crop_prompts(prompts, g), cfg)
        out = backend.run(x)
    return np.asarray(out[0, 0].float().cpu().numpy(), dtype=np.float32)


def _to_study(prob: npt.NDArray[np.float32], crop: Crop,
              geometry: Geometry) -> tuple[Region, npt.NDArray[np.float32], BoolArray]:
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
    probability = resample_array(prob, g, sub, order=1, mode="nearest")
    covered = resample_array(np.ones(prob.shape, np.float32), g, sub, order=0,
                             mode="constant", cval=0.0) > 0.5
    probability[~covered] = 0.0
    region = (slice(int(lo[2]), int(hi[2])), slice(int(lo[1]), int(hi[1])),
              slice(int(lo[0]), int(hi[0])))
    return region, probability, covered
