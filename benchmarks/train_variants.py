"""Train recipe variants of the default model side by side and compare them with the baseline.

Every variant is the shipped recipe (``medseg train`` on the prepared IBSI sarcoma folder, the same
fixed split, seed, step budget in minutes, periodic validation and best-step selection) with one
change; the baseline is the shipped recipe itself, trained in the same run under the same
conditions, so the table compares like with like. The runs go round-robin over the visible GPUs
(several per GPU at once), each as its own ``python -m medseg_gui.training train`` process.

Variants (issue 5: the model over-paints the muscle around small, muscle-dense tumours such as
the demo's STS_008):

- ``baseline``: the shipped recipe;
- ``hardneg``: two background patches per tumour patch, centred only where HU > -100 (muscle and
  other tissue next to the tumour, not fat);
- ``zoom``: isotropic zoom 0.8-1.25 instead of per-axis scaling (small tumours seen at more sizes);
- ``hardneg+zoom``: both.

Usage (on a GPU machine; a few minutes per run, all runs at once):
    python benchmarks/train_variants.py --data .traindata --work /tmp/variants --minutes 6.5
Prints per-case validation Dice of each variant; ``--json`` writes the table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS: dict[str, list[str]] = {
    "baseline": [],
    "hardneg": ["--neg-ratio", "2", "--bg-min-hu", "-100"],
    "zoom": ["--zoom", "0.8", "1.25"],
    "hardneg+zoom": ["--neg-ratio", "2", "--bg-min-hu", "-100", "--zoom", "0.8", "1.25"],
}


def gpu_count() -> int:
    import torch

    return max(torch.cuda.device_count(), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / ".traindata")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=6.5)
    ap.add_argument("--workers", type=int, default=6, help="data-loader processes per run")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    gpus = gpu_count()
    procs = {}
    for n, name in enumerate(args.variants):
        out = args.work / name / "model"
        cmd = [sys.executable, "-m", "medseg_gui.training", "train", "--data", str(args.data),
               "--out", str(out), "--model-id", "sts-tumour-unet", "--version", "1.1.0",
               "--work", str(args.work / name / "work"), "--minutes", str(args.minutes),
               "--steps", "20000", "--workers", str(args.workers), "--log-every", "250",
               "--val-every", "500", "--select", "best", "--checkpoint-every", "1000",
               *VARIANTS[name]]
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": str(n % gpus), "PYTHONUNBUFFERED": "1"}
        (args.work / name).mkdir(parents=True, exist_ok=True)
        log = open(args.work / name / "train.log", "w")  # noqa: SIM115 (closed below)
        procs[name] = (subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log,
                                        stderr=subprocess.STDOUT), log, time.perf_counter())
        print(f"started {name} on GPU {n % gpus}: {' '.join(cmd[3:])}", flush=True)
    rows = {}
    for name, (proc, log, start) in procs.items():
        code = proc.wait()
        log.close()
        card_path = args.work / name / "model" / "model.json"
        if code or not card_path.is_file():
            print(f"{name}: FAILED (exit {code}); see {args.work / name / 'train.log'}")
            continue
        card = json.loads(card_path.read_text())
        val = card["metrics"]["validation_dice"]
        rows[name] = {"per_case": val["per_case"], "mean": val["mean"],
                      "steps": card["training"]["steps"],
                      "selected_step": card["training"]["selected_step"],
                      "wall_s": round(time.perf_counter() - start)}
    if not rows:
        sys.exit("no variant finished")
    cases = list(next(iter(rows.values()))["per_case"])
    print(f"\nvalidation Dice per case (best of the periodic validations), {args.minutes:g} min "
          f"per run, {len(procs)} runs over {gpus} GPU(s); baseline = the shipped recipe")
    print(f"{'variant':14} {'steps':>6} {'sel':>5} " + " ".join(f"{c[-3:]:>5}" for c in cases)
          + f" {'mean':>6} {'vs base':>8}")
    base = rows.get("baseline", {}).get("mean")
    for name, r in rows.items():
        delta = f"{r['mean'] - base:+8.3f}" if base is not None else f"{'':8}"
        print(f"{name:14} {r['steps']:6d} {r['selected_step']:5d} "
              + " ".join(f"{r['per_case'][c]:5.3f}" for c in cases)
              + f" {r['mean']:6.3f} {delta}")
    if args.json:
        args.json.write_text(json.dumps({"minutes": args.minutes, "gpus": gpus, "rows": rows},
                                        indent=2))


if __name__ == "__main__":
    main()
