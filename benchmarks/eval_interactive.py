"""Interactive Dice of promptable models with a simulated user, against classical baselines.

For every object of the case sets, the simulated user of
:mod:`medseg_gui.training.interactive_eval` clicks up to ``--clicks`` times (the first click at
the centre of the reference's largest part, then at the centre of the largest error), and gives
one 3D box and one axial rectangle; each prompt runs the product's ``predict`` on the study's own
grid with ONNX Runtime on ``--threads`` CPU threads. Reported per set: Dice after 1, 3, 5 and 10
clicks, NoC@85 / NoC@90, box and rectangle Dice, median seconds per prompt; for several
``--model`` folders (seeds) also their mean and spread.

Baselines, on the same clicks, in the same run (``--baselines``): the product's own region grow
(Fill, 3D, tolerance 60 HU, as the tool's default), SimpleITK ``ConfidenceConnected`` from the
positive clicks, and scikit-image's ``random_walker`` with the clicks as seeds (positive clicks
foreground, negative clicks and the crop's border background) on the model's first crop
(192 x 192 x 96 mm at 1.5 x 1.5 x 3 mm): after 1 click, and after the first model's 5 clicks.

Case sets (never trained on): ``sarcoma`` (the automatic model's held-out IBSI cases),
``lung`` (the IBSI lung patient's GTV; evaluation only, CC BY-NC), ``openkbp-test`` and
``openkbp-validation`` (held-out OpenKBP patients: targets and organs; validation is what the
shipped seed was chosen on), ``totalseg`` (the organs of the TotalSegmentator DICOM example),
``synthetic-lung`` and ``synthetic-liver`` (synthetic lesions of
:mod:`medseg_gui.training.synthetic_lesions`, drawn with the fixed evaluation seed into the
*test* hosts only: CRLM-CT-1006, the TotalSegmentator DICOM example and the OpenKBP test
patients; inserted on each host's own full-resolution grid, not resampled from a prepared case,
so they are scored as a real study would be; lesions of 0.05 mL and more: 29 lung, 28 liver).

Usage::

    python benchmarks/eval_interactive.py --model M0 [--model M1 ...] [--sets ...]
        [--clicks 10] [--baselines] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg_gui.core.metrics import dice
from medseg_gui.core.volume import Volume
from medseg_gui.inference.model_card import load_card
from medseg_gui.training.interactive_data import shared_sources
from medseg_gui.training.interactive_eval import (
    ObjectScore,
    evaluate_object,
    region_centre,
    summarise,
)

ROOT = Path(__file__).resolve().parent.parent
SETS = ("sarcoma", "lung", "openkbp-test", "openkbp-validation", "totalseg", "synthetic-lung",
        "synthetic-liver")
MIN_ML = 0.5
MIN_SYNTHETIC_ML = 0.05


def objects(data: Path, set_name: str) -> Iterator[tuple[str, Volume, list[tuple[str, Any]]]]:
    """``(case, volume, [(object name, reference mask)])`` of one case set."""
    from medseg_gui.io.imagefile import read_image
    from medseg_gui.io.loader import load_volume

    if set_name == "lung":
        vol = read_image(data / "ibsi_lung" / "nifti" / "image" / "phantom.nii.gz")
        ref = read_image(data / "ibsi_lung" / "nifti" / "mask" / "mask.nii.gz").array > 0
        yield "ibsi_lung", vol, [("GTV-1", ref)]
        return
    if set_name.startswith("synthetic-"):
        from medseg_gui.training.synthetic_data import evaluation_cases

        for case, vol, objs, _ in evaluation_cases(data, set_name.removeprefix("synthetic-")):
            voxel_ml = float(np.prod(vol.geometry.spacing)) / 1000
            yield case, vol, [(n, m) for n, m in objs if m.sum() * voxel_ml >= MIN_SYNTHETIC_ML]
        return
    want = {"sarcoma": ("sarcoma", "test"), "openkbp-test": ("openkbp", "test"),
            "openkbp-validation": ("openkbp", "validation"), "totalseg": ("totalseg", "test")}
    collection, split = want[set_name]
    for src in shared_sources(data, splits=(split,)):
        if src.collection != collection:
            continue
        vol = load_volume(src.image)
        cache: dict[Path, Any] = {}
        found = []
        for name, _kind, path, label in src.objects:
            if path not in cache:
                m = load_volume(path)
                if not m.geometry.same_grid(vol.geometry, tol=1e-2):
                    m = m.resample(vol.geometry, interpolation="nearest")
                cache[path] = m.array
            ref = (cache[path] == label) if label else (cache[path] > 0)
            if ref.sum() * np.prod(vol.geometry.spacing) / 1000 >= MIN_ML:
                found.append((name, ref))
        yield src.case_id, vol, found


# -- baselines -------------------------------------------------------------------------------
def fill(vol: Volume, click: Any) -> Any:
    from medseg_gui.core.segmentation import Segmentation
    from medseg_gui.editing.regions import region_grow

    seg = Segmentation.empty(vol.geometry)
    ijk = vol.geometry.world_to_index(np.asarray(click))
    change = region_grow(seg, vol.array, ijk.tolist(), 1, tolerance_hu=60.0)
    out = np.zeros(vol.shape, bool)
    if change.region is not None and change.new is not None:
        out[change.region] = change.new > 0
    return out


def confidence_connected(vol: Volume, positives: list[Any]) -> Any:
    import SimpleITK as sitk

    from medseg_gui.core.volume import to_sitk

    img = to_sitk(vol.array.astype(np.float32), vol.geometry)
    seeds = []
    for p in positives:
        i, j, k = np.rint(vol.geometry.world_to_index(np.asarray(p))).astype(int).tolist()
        seeds.append((i, j, k))
    out = sitk.ConfidenceConnected(img, seedList=seeds, numberOfIterations=2, multiplier=2.5,
                                   initialNeighborhoodRadius=2, replaceValue=1)
    return sitk.GetArrayFromImage(out) > 0


def random_walker(vol: Volume, clicks: list[tuple[Any, bool]], card: Any) -> Any:
    from skimage.segmentation import random_walker as rw

    from medseg_gui.core.resample import resample_array
    from medseg_gui.inference.interactive import initial_crop, prompt_config
    from medseg_gui.inference.prompts import point

    cfg = prompt_config(card)
    crop = initial_crop(point(clicks[0][0]), None, vol.geometry, cfg).geometry
    hu = resample_array(vol.array, vol.geometry, crop, order=1, mode="constant", cval=-1024)
    data = (np.clip(hu, -200, 300) + 200) / 500
    labels = np.zeros(crop.shape, np.int32)
    labels[0], labels[-1], labels[:, 0], labels[:, -1], labels[:, :, 0], labels[:, :, -1] = (
        2, 2, 2, 2, 2, 2)
    for p, positive in clicks:
        k, j, i = np.rint(crop.world_to_index(np.asarray(p))[::-1]).astype(int)
        labels[max(k - 1, 0):k + 2, max(j - 2, 0):j + 3, max(i - 2, 0):i + 3] = 1 if positive \
            else 2
    seg = rw(data, labels, beta=130, mode="cg", spacing=crop.spacing[::-1], tol=1e-2)
    prob = (seg == 1).astype(np.float32)
    back = resample_array(prob, crop, vol.geometry, order=1, mode="constant", cval=0.0)
    return back >= 0.5


def baselines(vol: Volume, ref: Any, score: ObjectScore, card: Any) -> dict[str, float]:
    first = score.clicks[0][0]
    five = score.clicks[:5]
    out = {"fill@1": dice(fill(vol, first), ref),
           "confidence_connected@1": dice(confidence_connected(vol, [first]), ref),
           "random_walker@1": dice(random_walker(vol, score.clicks[:1], card), ref)}
    pos = [p for p, positive in five if positive]
    out["confidence_connected@5"] = dice(confidence_connected(vol, pos), ref)
    out["random_walker@5"] = dice(random_walker(vol, five, card), ref)
    return {k: round(v, 4) for k, v in out.items()}


# -- report ----------------------------------------------------------------------------------
KEYS = ("dice@1", "dice@3", "dice@5", "dice@10", "noc@85", "noc@90", "box", "rectangle",
        "seconds_per_prompt_median")


def table(results: dict[str, dict[str, list[ObjectScore]]], clicks: int) -> str:
    lines = [f"{'set':20} {'model':22} {'n':>4} " + " ".join(f"{k.split('_')[0]:>8}"
                                                            for k in KEYS)]
    for set_name in next(iter(results.values())):
        rows = []
        for model, per_set in results.items():
            s = summarise(per_set[set_name], clicks)
            rows.append(s)
            lines.append(f"{set_name:20} {model:22} {s.get('objects', 0):4d} "
                         + " ".join(f"{s.get(k, float('nan')):8.3f}" for k in KEYS))
        if len(rows) > 1:
            mean = {k: np.mean([r.get(k, np.nan) for r in rows]) for k in KEYS}
            sd = {k: np.std([r.get(k, np.nan) for r in rows], ddof=1) for k in KEYS}
            lines.append(f"{set_name:20} {'mean over seeds':22} {'':4} "
                         + " ".join(f"{mean[k]:8.3f}" for k in KEYS))
            lines.append(f"{set_name:20} {'sd over seeds':22} {'':4} "
                         + " ".join(f"{sd[k]:8.3f}" for k in KEYS))
        first = next(iter(results.values()))[set_name]
        names = sorted({k for o in first for k in o.baselines})
        for k in names:
            v = np.nanmean([o.baselines[k] for o in first if k in o.baselines])
            lines.append(f"{set_name:20} {'baseline ' + k:32} {v:8.3f}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    ap.add_argument("--clicks", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--baselines", action="store_true")
    ap.add_argument("--json", help="write every object's figures here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from medseg_gui.inference.onnx_backend import OnnxRuntimeBackend

    cards = [load_card(m) for m in args.model]
    refs = [c.ref for c in cards]  # seeds of one version are told apart by their folder
    labels = [r if refs.count(r) == 1 else f"{r}/{Path(m).name}"
              for r, m in zip(refs, args.model, strict=True)]
    backends = [OnnxRuntimeBackend(c, device="cpu", threads=args.threads) for c in cards]
    results: dict[str, dict[str, list[ObjectScore]]] = {m: {} for m in labels}
    t0 = time.perf_counter()
    for set_name in args.sets:
        for m in labels:
            results[m][set_name] = []
        for case, vol, objs in objects(Path(args.data), set_name):
            for name, ref in objs:
                if region_centre(ref, vol.geometry) is None:
                    continue
                for label, card, be in zip(labels, cards, backends, strict=True):
                    score = evaluate_object(vol, ref, card, be, case=case, name=name,
                                            set_name=set_name, clicks=args.clicks)
                    results[label][set_name].append(score)
                first = results[labels[0]][set_name][-1]
                if args.baselines:
                    first.baselines = baselines(vol, ref, first, cards[0])
                print(f"{time.perf_counter() - t0:7.0f}s {set_name} {case} {name} "
                      f"{first.volume_ml:.1f} mL: " + " ".join(
                          f"{results[m][set_name][-1].dice[0]:.2f}/"
                          f"{results[m][set_name][-1].at(5):.2f}" for m in labels)
                      + (f" baselines {first.baselines}" if first.baselines else ""),
                      flush=True)
    if args.json:  # first: a failing table must not lose an hour of clicks
        out = {m: {s: {"summary": summarise(v, args.clicks), "objects": [o.to_json() for o in v]}
                   for s, v in per.items()} for m, per in results.items()}
        Path(args.json).write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(f"\n{len(cards)} model(s) on {platform.processor() or platform.machine()}, "
          f"ONNX Runtime {args.threads} CPU threads, {args.clicks} clicks")
    print(table(results, args.clicks))


if __name__ == "__main__":
    main()
