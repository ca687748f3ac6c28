"""Inference-side variants of a promptable model, chosen on validation only.

    python benchmarks/prompt_inference_variants.py --model engines/prompt-unet/1.2.0 \
        --data .ptdata/val [--thresholds 0.5 0.4 0.3] [--flips none x xy] [--refine 1 2]

``--data`` is a prepared validation set (``medseg train-prompt --prepare ../shared/data --data
.ptdata/val --splits validation``: the 75 OpenKBP validation objects the registry's gate uses).
For each probability threshold and each flip test-time augmentation (the crop's output averaged
over mirrored inputs; training flipped every axis, so each mirror is in distribution) it prints
the mean Dice after 1 and 3 simulated clicks (``interactive_eval.evaluate_object``) and the
median seconds per prompt, against the card's own threshold without flips (the baseline row,
run first). ``--refine N`` runs the network N more times with its own thresholded output as the
prior channel and the prompts unchanged. ONNX Runtime on the CPU. Results:
``benchmarks/results/prompt_inference_variants_cpu.txt`` (1.1.0) and
``prompt_refine_passes_cpu.txt`` (1.2.0).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from medseg_gui.core.volume import Volume
from medseg_gui.inference.backend import Backend, open_backend
from medseg_gui.inference.model_card import ModelCard, load_card
from medseg_gui.inference.prompt_encoding import CHANNELS
from medseg_gui.training.interactive_data import open_interactive
from medseg_gui.training.interactive_eval import evaluate_object

FLIPS: dict[str, list[tuple[int, ...]]] = {"none": [()], "x": [(), (4,)],
                                           "xy": [(), (4,), (3,), (3, 4)]}


def with_flips(run: Callable[[Any], torch.Tensor],
               flips: list[tuple[int, ...]]) -> Callable[[Any], torch.Tensor]:
    """``run`` averaged over the mirrored inputs (dims of the ``(B, C, z, y, x)`` crop)."""
    def tta(x: Any) -> torch.Tensor:
        x = torch.as_tensor(x)
        total = None
        for dims in flips:
            out = run(torch.flip(x, dims) if dims else x).float()
            out = torch.flip(out, dims) if dims else out
            total = out if total is None else total + out
        assert total is not None
        return total / len(flips)
    return tta


def with_refine(run: Callable[[Any], torch.Tensor], threshold: float,
                passes: int) -> Callable[[Any], torch.Tensor]:
    """``run`` again ``passes`` times with its own thresholded output as the prior channel,
    the prompts unchanged (what a corrective round feeds the network, without a new click)."""
    prior = CHANNELS.index("prior")

    def refine(x: Any) -> torch.Tensor:
        x = torch.as_tensor(x).clone()
        out = run(x).float()
        for _ in range(passes):
            x[:, prior] = (out[:, 0] >= threshold).float()
            out = run(x).float()
        return out
    return refine


def score(card: ModelCard, backend: Backend, cases: list[Any]) -> tuple[float, float, float]:
    d1, d3, secs = [], [], []
    for case in cases:
        vol = Volume(case.hu, case.info.geometry)
        for info, ref in zip(case.info.objects, case.masks, strict=True):
            s = evaluate_object(vol, ref, card, backend, case=case.info.case_id, name=info.name,
                                set_name="validation", clicks=3, boxes=False)
            d1.append(s.at(1))
            d3.append(s.at(3))
            secs.extend(s.seconds)
    return float(np.mean(d1)), float(np.mean(d3)), float(np.median(secs))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="prepared validation set")
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.4, 0.3])
    ap.add_argument("--flips", nargs="+", choices=sorted(FLIPS), default=["x", "xy"])
    ap.add_argument("--refine", type=int, nargs="*", default=[],
                    help="extra passes with the output as prior (e.g. 1 2)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    card = load_card(args.model)
    data = open_interactive(args.data)
    cases = [data.load(c.case_id) for c in data.select("validation")]
    n = sum(len(c.masks) for c in cases)
    base_thr = float(card.prompt["threshold"])
    runs = [(base_thr, "none", 0)] + [(t, "none", 0) for t in args.thresholds
                                      if t != base_thr] + \
        [(base_thr, f, 0) for f in args.flips if f != "none"] + \
        [(base_thr, "none", r) for r in args.refine if r > 0]
    print(f"{card.ref}, {n} validation objects of {args.data}, ONNX Runtime {args.threads} CPU "
          f"thread(s); baseline = the card's threshold {base_thr:g}, no flips")
    print(f"{'threshold':>9} {'flips':>5} {'refine':>6} {'dice@1':>7} {'dice@3':>7} "
          f"{'vs base @3':>10} {'s/prompt':>8}")
    base3 = None
    for thr, flips, passes in runs:
        variant = dataclasses.replace(card, prompt={**card.prompt, "threshold": thr})
        backend = open_backend(variant, "onnxruntime", device="cpu")
        run = with_flips(backend.run, FLIPS[flips])
        backend.run = with_refine(run, thr, passes)  # type: ignore[method-assign,assignment]
        d1, d3, sec = score(variant, backend, cases)
        base3 = d3 if base3 is None else base3
        print(f"{thr:>9g} {flips:>5} {passes:>6} {d1:>7.4f} {d3:>7.4f} {d3 - base3:>+10.4f} "
              f"{sec:>8.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
