"""Train recipe variants of the default model side by side and compare them with a baseline.

Every variant is ``medseg train`` on the prepared IBSI sarcoma folder with the same fixed split,
step budget in minutes, periodic validation and best-step selection, and one change of recipe;
``baseline`` (1.0.0's recipe) and ``hardneg+zoom`` (the shipped 1.1.0's) run in the same
invocation under the same conditions when named, so the table compares like with like. The runs
go round-robin over the visible GPUs, each as its own ``python -m medseg_gui.training train``
process. ``--seeds`` runs every variant once per seed: the spread between seeds is the noise any
difference between variants must beat (about +-0.005 on the mean, +-0.05 on STS_008).

Variants (issue 5: the model over-paints the muscle around small, muscle-dense tumours such as
the demo's STS_008):

- ``baseline``: 1.0.0's recipe (one background patch per tumour patch, anywhere; per-axis scaling);
- ``hardneg``: two background patches per tumour patch, centred only where HU > -100 (muscle and
  other tissue next to the tumour, not fat);
- ``zoom``: isotropic zoom 0.8-1.25 instead of per-axis scaling (small tumours seen at more sizes);
- ``hardneg+zoom``: both (the shipped 1.1.0);
- ``hardneg3+zoom``: three background patches per tumour patch, centred where HU > -50;
- ``roi48+hz``: hardneg+zoom with 48x160x160 patches (more context, fewer steps in the budget);
- ``wide+hz``: hardneg+zoom with channels 24-256 (2.7x the weights);
- ``wide+roi48+hz``: both.

Usage (on a GPU machine; a few minutes per run, all runs at once):
    python benchmarks/train_variants.py --data .traindata --work /tmp/variants --minutes 6.5
        [--variants hardneg+zoom --seeds 1 2 3]
Prints per-case validation Dice of each variant; ``--json`` writes the table. Results:
``benchmarks/results/train_variants_*.txt``.
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
    "hardneg3+zoom": ["--neg-ratio", "3", "--bg-min-hu", "-50", "--zoom", "0.8", "1.25"],
    "roi48+hz": ["--roi", "48", "160", "160",
                 "--neg-ratio", "2", "--bg-min-hu", "-100", "--zoom", "0.8", "1.25"],
    "wide+hz": ["--channels", "24", "48", "96", "192", "256",
                "--neg-ratio", "2", "--bg-min-hu", "-100", "--zoom", "0.8", "1.25"],
    "wide+roi48+hz": ["--channels", "24", "48", "96", "192", "256", "--roi", "48", "160", "160",
                      "--neg-ratio", "2", "--bg-min-hu", "-100", "--zoom", "0.8", "1.25"],
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
    ap.add_argument("--seeds", nargs="+", type=int, default=[12345],
                    help="run every variant once per seed (run-to-run spread)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    gpus = gpu_count()
    procs = {}
    runs = [(v, s) for v in args.variants for s in args.seeds]
    for n, (variant, seed) in enumerate(runs):
        name = variant if len(args.seeds) == 1 else f"{variant} s{seed}"
        folder = args.work / name.replace("+", "-").replace(" ", "_")
        cmd = [sys.executable, "-m", "medseg_gui.training", "train", "--data", str(args.data),
               "--out", str(folder / "model"), "--model-id", "sts-tumour-unet",
               "--version", "1.1.0", "--work", str(folder / "work"),
               "--minutes", str(args.minutes), "--steps", "20000", "--seed", str(seed),
               "--workers", str(args.workers), "--log-every", "250", "--val-every", "500",
               "--select", "best", "--checkpoint-every", "1000", *VARIANTS[variant]]
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": str(n % gpus), "PYTHONUNBUFFERED": "1"}
        folder.mkdir(parents=True, exist_ok=True)
        log = open(folder / "train.log", "w")  # noqa: SIM115 (closed below)
        procs[name] = (subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log,
                                        stderr=subprocess.STDOUT), log, time.perf_counter(),
                       folder)
        print(f"started {name} on GPU {n % gpus}: {' '.join(cmd[3:])}", flush=True)
    rows = {}
    for name, (proc, log, start, folder) in procs.items():
        code = proc.wait()
        log.close()
        card_path = folder / "model" / "model.json"
        if code or not card_path.is_file():
            print(f"{name}: FAILED (exit {code}); see {folder / 'train.log'}")
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
          f"per run, {len(procs)} runs over {gpus} GPU(s); baseline = 1.0.0's recipe")
    print(f"{'variant':20} {'steps':>6} {'sel':>5} " + " ".join(f"{c[-3:]:>5}" for c in cases)
          + f" {'mean':>6} {'vs base':>8}")
    base = rows.get("baseline", {}).get("mean")
    for name, r in rows.items():
        delta = f"{r['mean'] - base:+8.3f}" if base is not None else f"{'':8}"
        print(f"{name:20} {r['steps']:6d} {r['selected_step']:5d} "
              + " ".join(f"{r['per_case'][c]:5.3f}" for c in cases)
              + f" {r['mean']:6.3f} {delta}")
    if args.json:
        args.json.write_text(json.dumps({"minutes": args.minutes, "gpus": gpus, "rows": rows},
                                        indent=2))


if __name__ == "__main__":
    main()
