"""Sliding-window inference over a normalised volume, blended and accumulated on the device.

Window placement, padding and the blending weights reproduce MONAI's
``sliding_window_inference`` (same starts, same Gaussian with ``sigma_scale=0.125``, same
``sum(p * w) / sum(w)``), so with air skipping off the two agree to float32 rounding; the test
suite holds them to 1e-4. What this adds: the weighted sum and the weights stay in float32 on the
compute device (a torch CUDA tensor when the backend runs on the GPU), windows that hold only air
are never sent to the network, batches shrink on an out-of-memory error, and progress reports
windows done of total through the project's ``progress(fraction, message) -> bool`` protocol.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from medseg_gui.core.progress import Progress, check, no_progress

Shape3 = tuple[int, int, int]
Predict = Callable[[torch.Tensor], torch.Tensor]


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is a device out-of-memory error (torch, ONNX Runtime or TensorRT)."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    oom = "out of memory" in text or "failed to allocate" in text
    return isinstance(exc, RuntimeError) and oom


def scan_interval(image: Shape3, roi: Shape3, overlap: float) -> Shape3:
    """MONAI's ``_get_scan_interval``: ``int(roi * (1 - overlap))``, at least 1."""
    out = []
    for n, r in zip(image, roi, strict=True):
        out.append(r if r == n else max(int(r * (1 - overlap)), 1))
    return (out[0], out[1], out[2])


def window_starts(image: Shape3, roi: Shape3, overlap: float) -> list[Shape3]:
    """Window corners in MONAI's ``dense_patch_slices`` order (first axis slowest).

    ``image`` must be at least ``roi`` along every axis (pad first, see :func:`pad_amounts`).
    """
    per_axis: list[list[int]] = []
    for n, r, step in zip(image, roi, scan_interval(image, roi, overlap), strict=True):
        count = math.ceil(n / step)
        last = next((d for d in range(count) if d * step + r >= n), None)
        num = 1 if last is None else last + 1
        per_axis.append([i * step - max(i * step + r - n, 0) for i in range(num)])
    return [(a, b, c) for a in per_axis[0] for b in per_axis[1] for c in per_axis[2]]


def pad_amounts(image: Shape3, roi: Shape3) -> list[tuple[int, int]]:
    """Symmetric padding (before, after) per axis for an image smaller than the ROI."""
    out = []
    for n, r in zip(image, roi, strict=True):
        diff = max(r - n, 0)
        out.append((diff // 2, diff - diff // 2))
    return out


def importance_map(roi: Shape3, mode: str, device: torch.device | str = "cpu",
                   sigma_scale: float = 0.125) -> torch.Tensor:
    """Blending weights of one window: MONAI's ``compute_importance_map`` (float32)."""
    if mode == "constant":
        weights = torch.ones(roi, dtype=torch.float32, device=device)
    elif mode == "gaussian":
        weights = torch.ones((), dtype=torch.float32, device=device)
        for axis, size in enumerate(roi):
            sigma = size * sigma_scale
            x = torch.arange(-(size - 1) / 2.0, (size - 1) / 2.0 + 1, dtype=torch.float32,
                             device=device)
            g = torch.exp(x**2 / (-2 * sigma**2))
            weights = weights.unsqueeze(-1) * g if axis else g
    else:
        raise ValueError(f"unknown blending mode {mode!r} (gaussian or constant)")
    floor = max(float(weights.min()), 1e-3)
    return torch.clamp(weights, min=floor)


@dataclass
class SlidingStats:
    """What a sliding-window pass did."""

    windows: int = 0
    skipped: int = 0
    batch_size: int = 0
    messages: tuple[str, ...] = ()


def sliding_window_probability(
    image: torch.Tensor,
    predict: Predict,
    roi: Sequence[int],
    *,
    overlap: float = 0.5,
    blend: str = "gaussian",
    batch_size: int = 4,
    body: torch.Tensor | None = None,
    pad_value: float = 0.0,
    progress: Progress = no_progress,
) -> tuple[torch.Tensor, SlidingStats]:
    """Blend ``predict`` over every window of ``image`` and return the probability map.

    Parameters
    ----------
    image
        Normalised volume ``(D, H, W)`` on the compute device; accumulation happens there.
    predict
        ``(B, 1, *roi) -> (B, 1, *roi)`` probabilities (a backend's ``run``).
    roi, overlap, blend
        Window size (array order), fractional overlap and ``"gaussian"``/``"constant"`` weights.
    batch_size
        Windows per call; halved (down to 1) when the device runs out of memory.
    body
        Boolean ``(D, H, W)`` mask of voxels that are not air (e.g. HU >= -500). Windows with no
        body voxel are not run; their voxels get probability 0 unless another window covers
        them. ``None`` runs every window (and then equals MONAI).
    pad_value
        Value of the padding added when the image is smaller than ``roi`` (MONAI pads with 0).
    progress
        ``progress(fraction, message) -> bool``; ``False`` raises :class:`Cancelled`.

    Returns
    -------
    (probability, stats)
        Float32 ``(D, H, W)`` tensor on ``image``'s device, and what was run.
    """
    if image.ndim != 3:
        raise ValueError(f"expected a (D, H, W) volume, got shape {tuple(image.shape)}")
    roi3: Shape3 = (int(roi[0]), int(roi[1]), int(roi[2]))
    size: Shape3 = (int(image.shape[0]), int(image.shape[1]), int(image.shape[2]))
    pads = pad_amounts(size, roi3)
    if any(p for pair in pads for p in pair):
        flat = [p for pair in reversed(pads) for p in pair]  # F.pad wants the last axis first
        image = F.pad(image[None, None], flat, mode="constant", value=pad_value)[0, 0]
        if body is not None:
            body = F.pad(body[None, None].to(torch.uint8), flat)[0, 0].bool()
    padded: Shape3 = (int(image.shape[0]), int(image.shape[1]), int(image.shape[2]))
    starts = window_starts(padded, roi3, overlap)
    if body is not None:
        body = body.to(image.device)
        keep = torch.stack([_window(body, s, roi3).any() for s in starts]).cpu().tolist()
        run = [s for s, k in zip(starts, keep, strict=True) if k]
    else:
        run = list(starts)
    stats = SlidingStats(windows=len(starts), skipped=len(starts) - len(run))
    weights = importance_map(roi3, blend, image.device)
    total = torch.zeros(padded, dtype=torch.float32, device=image.device)
    count = torch.zeros(padded, dtype=torch.float32, device=image.device)
    for s in run:
        _window(count, s, roi3).add_(weights)
    messages: list[str] = []
    batch = max(int(batch_size), 1)
    done = 0
    check(progress, 0.0, f"0 of {len(run)} windows ({stats.skipped} of air skipped)")
    while done < len(run):
        group = run[done : done + batch]
        windows = torch.stack([_window(image, s, roi3) for s in group])[:, None]
        try:
            probs = predict(windows)
        except Exception as exc:
            if not is_out_of_memory(exc) or batch == 1:
                raise
            batch = max(batch // 2, 1)
            messages.append(f"out of device memory: retrying with {batch} windows per batch")
            _empty_cache(image.device)
            continue
        probs = probs.to(device=image.device, dtype=torch.float32)
        for s, p in zip(group, probs, strict=True):
            _window(total, s, roi3).add_(p[0] * weights)
        done += len(group)
        check(progress, done / len(run), f"{done} of {len(run)} windows")
    stats.batch_size = batch
    stats.messages = tuple(messages)
    prob = torch.where(count > 0, total / count.clamp_min(1e-12), torch.zeros_like(total))
    (a0, _), (b0, _), (c0, _) = pads
    return prob[a0 : a0 + size[0], b0 : b0 + size[1], c0 : c0 + size[2]], stats


def _window(t: torch.Tensor, start: Shape3, roi: Shape3) -> torch.Tensor:
    a, b, c = start
    return t[a : a + roi[0], b : b + roi[1], c : c + roi[2]]


def _empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
