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

import contextlib
import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from medseg_gui.core.progress import Cancelled, Progress, check, no_progress

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


@dataclass(frozen=True)
class Lane:
    """One device's share of the work: where its windows are cut and accumulated, and the
    ``predict`` (a backend's ``run``) that computes there."""

    device: torch.device
    predict: Predict


def sliding_window_probability(
    image: torch.Tensor,
    predict: Predict | Sequence[Lane],
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
        Normalised volume ``(D, H, W)``. With one ``predict`` the work happens on ``image``'s
        device. With several lanes (one per GPU) the windows are split into as many contiguous
        runs along the first axis; each lane copies the slab of ``image`` its windows cover to its
        device, cuts, runs and accumulates its windows there in its own thread, and the slabs
        are summed on the first lane's device.
    predict
        ``(B, 1, *roi) -> (B, 1, *roi)`` probabilities (a backend's ``run``), or a sequence of
        :class:`Lane`.
    roi, overlap, blend
        Window size (array order), fractional overlap and ``"gaussian"``/``"constant"`` weights.
    batch_size
        Windows per call; halved (down to 1) when a device runs out of memory.
    body
        Boolean ``(D, H, W)`` mask of voxels that are not air (e.g. HU >= -500). Windows with no
        body voxel are not run; their voxels get probability 0 unless another window covers
        them. ``None`` runs every window (and then equals MONAI).
    pad_value
        Value of the padding added when the image is smaller than ``roi`` (MONAI pads with 0).
    progress
        ``progress(fraction, message) -> bool``, called from the calling thread only; ``False``
        raises :class:`Cancelled` (other lanes stop after their current batch).

    Returns
    -------
    (probability, stats)
        Float32 ``(D, H, W)`` tensor on the (first) lane's device, and what was run.
    """
    if image.ndim != 3:
        raise ValueError(f"expected a (D, H, W) volume, got shape {tuple(image.shape)}")
    lanes = [Lane(image.device, predict)] if callable(predict) else list(predict)
    if not lanes:
        raise ValueError("no lane to run the windows on")
    out_device = lanes[0].device
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
    weights = importance_map(roi3, blend, out_device)
    count = torch.zeros(padded, dtype=torch.float32, device=out_device)
    for s in run:
        _window(count, s, roi3).add_(weights)
    check(progress, 0.0, f"0 of {len(run)} windows ({stats.skipped} of air skipped)")
    jobs = [_LaneJob(lane, group, image, weights, roi3, batch_size)
            for lane, group in zip(lanes, _split(run, len(lanes)), strict=True)]
    if len(jobs) == 1:
        def report(n: int) -> None:
            check(progress, n / len(run), f"{n} of {len(run)} windows")

        jobs[0].run(report)
    else:
        _run_parallel(jobs, len(run), progress)
    total = torch.zeros(padded, dtype=torch.float32, device=out_device)
    for job in jobs:
        if job.total is not None:
            total[job.z0 : job.z0 + job.total.shape[0]] += job.total.to(out_device)
    stats.batch_size = min(job.batch for job in jobs)
    stats.messages = tuple(m for job in jobs for m in job.messages)
    prob = torch.where(count > 0, total / count.clamp_min(1e-12), torch.zeros_like(total))
    (a0, _), (b0, _), (c0, _) = pads
    return prob[a0 : a0 + size[0], b0 : b0 + size[1], c0 : c0 + size[2]], stats


def _split(run: list[Shape3], parts: int) -> list[list[Shape3]]:
    """``run`` (first axis slowest) in ``parts`` contiguous groups of near-equal size."""
    bounds = [round(i * len(run) / parts) for i in range(parts + 1)]
    return [run[bounds[i] : bounds[i + 1]] for i in range(parts)]


class _LaneJob:
    """One lane's windows: slab upload, batched predict, float32 accumulation on its device."""

    def __init__(self, lane: Lane, group: list[Shape3], image: torch.Tensor,
                 weights: torch.Tensor, roi: Shape3, batch_size: int) -> None:
        self.lane, self.group, self.image, self.roi = lane, group, image, roi
        self.weights = weights
        self.batch = max(int(batch_size), 1)
        self.messages: list[str] = []
        self.total: torch.Tensor | None = None
        self.z0 = min((s[0] for s in group), default=0)
        self.stop = threading.Event()

    def run(self, report: Callable[[int], None]) -> None:
        if not self.group:
            return
        device = self.lane.device
        with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
            z1 = max(s[0] for s in self.group) + self.roi[0]
            slab = self.image[self.z0 : z1].to(device)  # no copy when already there
            weights = self.weights.to(device)
            total = torch.zeros(slab.shape, dtype=torch.float32, device=device)
            shifted = [(a - self.z0, b, c) for a, b, c in self.group]
            done = 0
            while done < len(shifted):
                if self.stop.is_set():
                    raise Cancelled("stopped")
                group = shifted[done : done + self.batch]
                windows = torch.stack([_window(slab, s, self.roi) for s in group])[:, None]
                try:
                    probs = self.lane.predict(windows)
                except Exception as exc:
                    if not is_out_of_memory(exc) or self.batch == 1:
                        raise
                    self.batch = max(self.batch // 2, 1)
                    self.messages.append(f"out of device memory on {device}: retrying with "
                                         f"{self.batch} windows per batch")
                    _empty_cache(device)
                    continue
                probs = probs.to(device=device, dtype=torch.float32)
                for s, p in zip(group, probs, strict=True):
                    _window(total, s, self.roi).add_(p[0] * weights)
                done += len(group)
                report(len(group))
            self.total = total


def _run_parallel(jobs: list[_LaneJob], windows: int, progress: Progress) -> None:
    """Each job in its own thread; progress and cancel are handled here, in the caller's."""
    lock = threading.Lock()
    done = [0]

    def report(n: int) -> None:
        with lock:
            done[0] += n

    with ThreadPoolExecutor(len(jobs), thread_name_prefix="lane") as pool:
        futures = [pool.submit(job.run, report) for job in jobs]
        try:
            while True:
                finished, pending = wait(futures, timeout=0.1, return_when=FIRST_EXCEPTION)
                if not pending or any(f.exception() for f in finished):
                    break
                check(progress, done[0] / windows, f"{done[0]} of {windows} windows")
        finally:  # after a cancel or a failed lane the other lanes stop after their batch
            for job in jobs:
                job.stop.set()
    errors = [e for e in (f.exception() for f in futures) if e is not None]
    if errors:  # the lane that failed first, not the ones it stopped
        raise next((e for e in errors if not isinstance(e, Cancelled)), errors[0])
    check(progress, 1.0, f"{windows} of {windows} windows")


def _window(t: torch.Tensor, start: Shape3, roi: Shape3) -> torch.Tensor:
    a, b, c = start
    return t[a : a + roi[0], b : b + roi[1], c : c + roi[2]]


def _empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
