"""Segment a Volume with a model: resample, normalise, slide, blend, resample back, threshold.

The steps follow the model card: the study is resampled (linear) onto a grid with the card's
spacing (``i, j, k``) and orientation covering the study's extent, clipped and normalised, then
:func:`~.sliding.sliding_window_probability` runs the backend over the windows (accumulating on
the backend's device, skipping windows of air). The probability goes back onto the study grid
(float16) and is thresholded into a :class:`~medseg_gui.core.segmentation.Segmentation` whose
segments name the model. When the study already is on the model's grid no interpolation happens
at either end. A GPU that runs out of memory first gets smaller batches, then the whole pass is
redone on the CPU; :attr:`SegmentationResult.messages` says which happened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.progress import Progress, no_progress, scaled
from medseg_gui.core.segmentation import Segmentation
from medseg_gui.core.volume import Volume
from medseg_gui.inference.backend import Backend, cpu_fallback, describe, devices
from medseg_gui.inference.model_card import ModelCard
from medseg_gui.inference.sliding import (
    Lane,
    Predict,
    is_out_of_memory,
    sliding_window_probability,
)

log = logging.getLogger(__name__)

AIR_HU = -500.0
_AXES = {"L": (0, 1.0), "R": (0, -1.0), "P": (1, 1.0), "A": (1, -1.0), "S": (2, 1.0),
         "I": (2, -1.0)}


class InferenceError(Exception):
    """Inference could not finish (out of memory everywhere, a backend failure): one line."""


@dataclass
class SegmentationResult:
    """What :func:`segment` returns."""

    probability: npt.NDArray[np.float16]
    segmentation: Segmentation
    backend: str
    precision: str
    device: str
    windows: int = 0
    skipped: int = 0
    batch_size: int = 0
    seconds: float = 0.0
    messages: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"{self.backend} {self.precision} on {self.device}: {self.windows} windows "
                f"({self.skipped} of air skipped), batch {self.batch_size}, {self.seconds:.1f} s")
        return "; ".join([text, *self.messages])


def orientation_matrix(code: str) -> npt.NDArray[np.float64]:
    """The direction matrix whose i, j, k columns point along a code like ``"LPS"``."""
    d = np.zeros((3, 3))
    used = set()
    for col, letter in enumerate(code.upper()):
        if letter not in _AXES:
            raise ValueError(f"bad orientation code {code!r}")
        axis, sign = _AXES[letter]
        used.add(axis)
        d[axis, col] = sign
    if len(code) != 3 or len(used) != 3:
        raise ValueError(f"bad orientation code {code!r}")
    return d


def model_geometry(study: Geometry, card: ModelCard) -> Geometry:
    """The grid the model sees: the card's spacing and orientation over the study's extent."""
    direction = orientation_matrix(card.orientation)
    spacing = np.asarray(card.spacing, dtype=np.float64)
    if np.allclose(direction, study.direction_matrix, atol=1e-6) and np.allclose(
            spacing, study.spacing, rtol=1e-5):
        return study
    corners = np.array([[i, j, k] for i in (0, study.size_ijk[0] - 1)
                        for j in (0, study.size_ijk[1] - 1) for k in (0, study.size_ijk[2] - 1)])
    along = study.index_to_world(corners) @ direction  # world -> coordinates along new axes
    lo, hi = along.min(axis=0), along.max(axis=0)
    n = np.rint((hi - lo) / spacing).astype(int) + 1
    return Geometry(shape=(int(n[2]), int(n[1]), int(n[0])), spacing=tuple(spacing),
                    origin=tuple(direction @ lo), direction=tuple(direction.ravel()))


def prepare(volume: Volume, card: ModelCard) -> tuple[Volume, npt.NDArray[np.float32]]:
    """The study on the model grid (HU) and its normalised float32 array."""
    grid = model_geometry(volume.geometry, card)
    on_grid = volume if grid is volume.geometry else volume.resample(grid, interpolation="linear")
    return on_grid, card.normalisation.apply(on_grid.array)


def segment(
    volume: Volume,
    card: ModelCard,
    backend: Backend | Sequence[Backend],
    *,
    batch_size: int = 8,
    skip_air: bool = True,
    progress: Progress = no_progress,
    fallback: Callable[[], Backend] | None = None,
) -> SegmentationResult:
    """Run ``card``'s model through ``backend`` on ``volume``.

    Parameters
    ----------
    backend
        A loaded backend, or one per GPU (:func:`~.backend.open_backends`): the windows are
        then split over them.
    batch_size
        Windows per backend call (capped by ``backend.max_batch``).
    skip_air
        Do not run windows whose voxels are all below -500 HU.
    progress
        ``progress(fraction, message) -> bool``; reports windows done of total.
    fallback
        Makes the CPU backend used when the device is out of memory even for one window
        (default: :func:`~.backend.cpu_fallback` of ``card``).

    Raises
    ------
    Cancelled
        The progress callback said stop.
    InferenceError
        Out of memory on the CPU too, or the backend failed.
    """
    t0 = time.perf_counter()
    check_progress = scaled(progress, 0.0, 0.1)
    check_progress(0.0, f"resampling to the model grid of {card.ref}")
    on_grid, image = prepare(volume, card)
    body = on_grid.array >= AIR_HU if skip_air else None
    messages: list[str] = []
    slide = scaled(progress, 0.1, 0.95)
    group: list[Backend] = list(backend) if isinstance(backend, Sequence) else [backend]
    used = group
    try:
        prob, stats = _slide(used, card, image, body, batch_size, slide)
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        used = [(fallback or (lambda: cpu_fallback(card)))()]
        messages.append(f"{describe(group)} ran out of memory even for one window; "
                        f"finished on {describe(used)} instead")
        log.warning(messages[-1])
        try:
            prob, stats = _slide(used, card, image, body, batch_size, slide)
        except Exception as exc2:
            if is_out_of_memory(exc2):
                raise InferenceError("out of memory on the GPU and on the CPU") from exc2
            raise
    messages[:0] = list(stats.messages)
    scaled(progress, 0.95, 1.0)(0.0, "resampling the probability to the study grid")
    if prob.is_cuda:  # the output is float16: half the bytes to copy back (the float32
        prob = prob.half()  # 300x512x512 took 154 ms on an H200, bench_inference --copies)
    prob_grid = prob.cpu().numpy()
    if on_grid.geometry is not volume.geometry:
        back = Volume(prob_grid.astype(np.float32, copy=False), on_grid.geometry).resample(
            volume.geometry, interpolation="linear", default_value=0.0)
        prob_grid = back.array
    probability = np.clip(prob_grid, 0.0, 1.0).astype(np.float16)
    label = card.labels[0].value if card.labels else 1
    labelmap: npt.NDArray[np.unsignedinteger[Any]] = np.where(
        probability >= card.threshold, label, 0).astype(np.uint16 if label > 255 else np.uint8)
    seg = Segmentation(labelmap, volume.geometry, card.segments())
    return SegmentationResult(
        probability=probability, segmentation=seg, backend=used[0].name,
        precision=used[0].precision, device=devices(used), windows=stats.windows,
        skipped=stats.skipped, batch_size=stats.batch_size,
        seconds=time.perf_counter() - t0, messages=messages)


def _slide(backends: list[Backend], card: ModelCard, image: npt.NDArray[np.float32],
           body: npt.NDArray[np.bool_] | None, batch_size: int,
           progress: Progress) -> tuple[torch.Tensor, Any]:
    host = torch.from_numpy(image)
    predict: Predict | list[Lane]
    if len(backends) == 1:  # the whole volume goes to the device once
        x, predict = host.to(backends[0].device), backends[0].run
    else:  # one lane per GPU: each copies the slab its windows cover
        x, predict = host, [Lane(torch.device(b.device), b.run) for b in backends]
    return sliding_window_probability(
        x, predict, card.roi_size, overlap=card.overlap, blend=card.blend,
        batch_size=min(batch_size, *(b.max_batch for b in backends)),
        body=torch.from_numpy(body) if body is not None else None,
        # a study shorter than the window is padded as training and validation pad it: with
        # the normalised low end of the window, not 0 (0.0 dropped an 18-slice demo crop's Dice
        # from 0.499 to 0.061, issue 20)
        pad_value=card.normalisation.pad_value, progress=progress)
