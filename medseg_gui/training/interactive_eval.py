"""Evaluating a promptable model with a simulated user, on the study's own grid.

The user of the issue's protocol: the first click at the centre (Euclidean distance-transform
maximum, in mm) of the largest connected part of the reference mask; each next click at the
centre of the largest error region of the current mask, positive where the model missed,
negative where it leaked; up to ``clicks`` clicks; every prompt runs the product's
:func:`medseg_gui.inference.interactive.predict` with all clicks so far and the previous mask as
the prior, as the AI tool does. Also one box from the reference's 3D bounding box, and one
rectangle (the reference's bounding box on its largest axial slice). Scores: Dice after each
click, NoC@85 / NoC@90 (clicks to reach Dice 0.85 / 0.90; ``clicks`` when never) and seconds per
prompt. The same code scores fine-tuned versions for the registry's promotion gate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.metrics import dice
from medseg_gui.core.volume import Volume
from medseg_gui.inference.backend import Backend
from medseg_gui.inference.interactive import predict
from medseg_gui.inference.model_card import ModelCard
from medseg_gui.inference.prompts import Prompts, box, point

BoolArray = npt.NDArray[np.bool_]
FULL = np.ones((3, 3, 3), dtype=bool)


def _box_of(mask: BoolArray, margin: int = 1) -> tuple[slice, ...] | None:
    idx = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax))) for ax in
           range(3)]
    if any(i.size == 0 for i in idx):
        return None
    return tuple(slice(max(int(i[0]) - margin, 0), min(int(i[-1]) + 1 + margin, n))
                 for i, n in zip(idx, mask.shape, strict=True))


def region_centre(mask: BoolArray, geometry: Geometry) -> tuple[float, float, float] | None:
    """LPS centre (distance-transform maximum, mm) of the largest connected part of ``mask``."""
    box_ = _box_of(mask)
    if box_ is None:
        return None
    sub = mask[box_]
    parts, count = ndimage.label(sub, structure=FULL)
    if count > 1:
        sizes = ndimage.sum_labels(np.ones_like(parts), parts, index=range(1, count + 1))
        sub = parts == int(np.argmax(sizes)) + 1
    dist = ndimage.distance_transform_edt(np.pad(sub, 1), sampling=geometry.spacing[::-1])
    k, j, i = np.unravel_index(int(np.argmax(dist)), dist.shape)
    kji = np.array([k, j, i]) - 1 + np.array([s.start for s in box_])
    w = geometry.index_to_world(kji[::-1].astype(np.float64))
    return (float(w[0]), float(w[1]), float(w[2]))


def next_click(reference: BoolArray, mask: BoolArray,
               geometry: Geometry) -> tuple[tuple[float, float, float], bool] | None:
    """The next click: the centre of the largest missed or leaked region, and whether it is
    positive (missed); ``None`` when the mask is perfect."""
    best: tuple[int, BoolArray, bool] | None = None
    for err, positive in ((reference & ~mask, True), (mask & ~reference, False)):
        box_ = _box_of(err)
        if box_ is None:
            continue
        parts, count = ndimage.label(err[box_], structure=FULL)
        sizes = ndimage.sum_labels(np.ones_like(parts), parts, index=range(1, count + 1))
        n = int(np.argmax(sizes))
        if best is None or sizes[n] > best[0]:
            region = np.zeros_like(reference)
            region[box_] = parts == n + 1
            best = (int(sizes[n]), region, positive)
    if best is None:
        return None
    centre = region_centre(best[1], geometry)
    assert centre is not None
    return centre, best[2]


def reference_box(reference: BoolArray, geometry: Geometry,
                  axial_only: bool = False) -> Prompts:
    """A box prompt: the 3D bounding box, or the bounding rectangle on the largest axial slice."""
    mask = reference
    if axial_only:
        k = int(np.argmax(reference.sum(axis=(1, 2))))
        mask = np.zeros_like(reference)
        mask[k] = reference[k]
    box_ = _box_of(mask, margin=0)
    assert box_ is not None
    lo = np.array([box_[2].start, box_[1].start, box_[0].start], dtype=np.float64)
    hi = np.array([box_[2].stop - 1, box_[1].stop - 1, box_[0].stop - 1], dtype=np.float64)
    if not axial_only:
        lo, hi = lo - 0.5, hi + 0.5  # the voxels' outer faces
    else:
        lo[:2], hi[:2] = lo[:2] - 0.5, hi[:2] + 0.5
    a, b = geometry.index_to_world(lo), geometry.index_to_world(hi)
    return box(a, b)


@dataclass
class ObjectScore:
    """One object's figures."""

    case: str
    name: str
    set: str
    volume_ml: float
    dice: list[float] = field(default_factory=list)  # after click 1, 2, ...
    box: float = float("nan")
    rectangle: float = float("nan")
    seconds: list[float] = field(default_factory=list)
    clicks: list[tuple[tuple[float, float, float], bool]] = field(default_factory=list)
    baselines: dict[str, float] = field(default_factory=dict)

    def noc(self, target: float, limit: int) -> int:
        """Clicks until Dice reaches ``target`` (``limit`` when it never does)."""
        return next((n + 1 for n, d in enumerate(self.dice) if d >= target), limit)

    def at(self, clicks: int) -> float:
        """Dice after ``clicks`` clicks (the last one if the user stopped: it was perfect)."""
        return self.dice[min(clicks, len(self.dice)) - 1]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_object(volume: Volume, reference: BoolArray, card: ModelCard, backend: Backend,
                    *, case: str, name: str, set_name: str, clicks: int = 10,
                    boxes: bool = True) -> ObjectScore:
    """Run the simulated user on one object (see the module docstring)."""
    spacing = np.prod(volume.geometry.spacing) / 1000.0
    score = ObjectScore(case, name, set_name, round(float(reference.sum() * spacing), 2))
    first = region_centre(reference, volume.geometry)
    assert first is not None
    prompts = point(first)
    score.clicks.append((first, True))
    mask: BoolArray | None = None
    for n in range(clicks):
        result = predict(volume, card, backend, prompts, prior=mask)
        mask = result.full_mask(volume.shape, prior=mask)
        score.dice.append(round(dice(mask, reference), 4))
        score.seconds.append(round(result.seconds, 4))
        if n == clicks - 1:
            break
        nxt = next_click(reference, mask, volume.geometry)
        if nxt is None:
            break
        score.clicks.append(nxt)
        prompts = prompts.add(point(nxt[0], negative=not nxt[1]))
    if boxes:
        for attr, axial in (("box", False), ("rectangle", True)):
            result = predict(volume, card, backend, reference_box(reference, volume.geometry,
                                                                  axial))
            setattr(score, attr, round(dice(result.full_mask(volume.shape), reference), 4))
    return score


def summarise(scores: Sequence[ObjectScore], clicks: int = 10) -> dict[str, Any]:
    """Mean figures of a set of objects."""
    if not scores:
        return {}

    def mean(values: Sequence[float]) -> float:
        return round(float(np.nanmean(values)), 4)

    secs = [s for o in scores for s in o.seconds]
    out: dict[str, Any] = {
        "objects": len(scores),
        **{f"dice@{n}": mean([o.at(n) for o in scores]) for n in (1, 3, 5, clicks)},
        "noc@85": mean([o.noc(0.85, clicks) for o in scores]),
        "noc@90": mean([o.noc(0.90, clicks) for o in scores]),
        "box": mean([o.box for o in scores]), "rectangle": mean([o.rectangle for o in scores]),
        "seconds_per_prompt_median": round(float(np.median(secs)), 4) if secs else None,
    }
    names = sorted({k for o in scores for k in o.baselines})
    for k in names:
        out[k] = mean([o.baselines.get(k, float("nan")) for o in scores])
    return out


VALIDATION_CLICKS = 3


def validate_prepared(cases: Sequence[Any], card: ModelCard, backend: Backend, *,
                      clicks: int = VALIDATION_CLICKS,
                      progress: Callable[[float, str], bool] | None = None) -> dict[str, Any]:
    """Mean Dice after ``clicks`` simulated clicks over the objects of prepared cases
    (:class:`~.interactive_data.LoadedCase`, on their stored grid): the figure the registry
    compares (``metrics["validation_dice"]``), the same for every version it compares."""
    per: dict[str, float] = {}
    t0 = time.perf_counter()
    total = sum(len(c.masks) for c in cases)
    for case in cases:
        vol = Volume(case.hu, case.info.geometry)
        for info, ref in zip(case.info.objects, case.masks, strict=True):
            if progress is not None:
                progress(len(per) / max(total, 1), f"validating {case.info.case_id}/{info.name}")
            score = evaluate_object(vol, ref, card, backend, case=case.info.case_id,
                                    name=info.name, set_name="validation", clicks=clicks,
                                    boxes=False)
            per[f"{case.info.case_id}/{info.name}"] = score.at(clicks)
    return {"per_case": per, "mean": round(float(np.mean(list(per.values()))), 4) if per
            else None, "metric": f"Dice after {clicks} simulated clicks (mean over objects)",
            "seconds": round(time.perf_counter() - t0, 1)}
