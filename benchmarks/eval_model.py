"""Score a model folder on the CPU: validation Dice per case, CPU seconds per case, lung Dice.

For every validation case recorded in the card's split (and the IBSI lung patient, evaluation
only: CC BY-NC, never trained on or shipped), the study is read from its NIfTI files, resampled
onto the model grid, segmented by sliding windows (the card's ROI, overlap and blending) and the
probability resampled back and thresholded on the study's own grid, where Dice is computed.
Seconds cover that whole path per case (reading the files excluded), with ``--threads`` CPU
threads. The exported ONNX graph (ONNX Runtime) is timed against the baseline, the same weights in
PyTorch (safetensors) in this one process; a ratio < 1 means ONNX Runtime is faster. The Dice of
the two must agree (same weights): the table shows both.

With ``--write`` the ONNX Runtime figures are stored under ``metrics`` in ``model.json`` (the
ONNX and weights files, and so their hashes, are unchanged).

Usage: python benchmarks/eval_model.py [--model engines/sts-tumour-unet/1.1.0]
       [--data ../shared/data] [--threads 2] [--write | --cases STS_008 STS_013 ...]
"""

from __future__ import annotations

import argparse
import platform
import statistics
from pathlib import Path
from typing import Any

import torch

from medseg_gui.inference.model_card import load_card
from medseg_gui.inference.network import TumourProbability, build_network, load_weights
from medseg_gui.training.evaluate import (
    CaseResult,
    Predictor,
    evaluate_case,
    onnx_predictor,
    prepare_nifti_pair,
)

ROOT = Path(__file__).resolve().parent.parent


def torch_predictor(card: Any) -> Predictor:
    head = TumourProbability(load_weights(build_network(card.architecture),
                                          card.weights_path)).eval()

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            out: torch.Tensor = head(x)
        return out

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "engines" / "sts-tumour-unet" / "1.1.0"))
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write", action="store_true", help="store the figures in model.json")
    ap.add_argument("--cases", nargs="+", metavar="CASE",
                    help="score these sarcoma cases instead of the card's validation cases "
                         "(an older model on a newer model's validation split)")
    args = ap.parse_args()
    if args.write and args.cases:
        ap.error("--write stores the card's own validation figures: leave out --cases")
    torch.set_num_threads(args.threads)
    card = load_card(args.model)
    card.verify(weights=True)
    data = Path(args.data)
    cases = {c: (data / "ibsi_sts" / "nifti" / c / "CT_image.nii.gz",
                 data / "ibsi_sts" / "nifti" / c / "CT_mask.nii.gz")
             for c in args.cases or card.training["split"]["validation"]}
    lung = ("ibsi_lung", (data / "ibsi_lung" / "nifti" / "image" / "phantom.nii.gz",
                          data / "ibsi_lung" / "nifti" / "mask" / "mask.nii.gz"))
    backends = {"onnxruntime": onnx_predictor(card, threads=args.threads),
                "torch": torch_predictor(card)}
    rows: dict[str, dict[str, CaseResult]] = {}
    for cid, (img, mask) in [*cases.items(), lung]:
        prepared = prepare_nifti_pair(cid, img, mask, card)
        rows[cid] = {}
        for name, fn in backends.items():
            evaluate_case(prepared, fn, card)  # warm-up (allocations, ORT's first run)
            rows[cid][name] = evaluate_case(prepared, fn, card)
        o, t = rows[cid]["onnxruntime"], rows[cid]["torch"]
        print(f"{cid:10s} Dice {o.dice:.3f} (torch {t.dice:.3f})  ORT {o.seconds:6.2f}s  "
              f"torch {t.seconds:6.2f}s  ratio {o.seconds / t.seconds:.2f}", flush=True)
    val = [rows[c]["onnxruntime"] for c in cases]
    mean = statistics.mean(r.dice for r in val)
    secs = statistics.median(r.seconds for r in val)
    ratio = statistics.median(rows[c]["onnxruntime"].seconds / rows[c]["torch"].seconds
                              for c in cases)
    print(f"validation mean Dice {mean:.4f}; CPU seconds per case (median, {args.threads} "
          f"threads): ORT {secs:.2f}, ratio ORT/torch {ratio:.2f}; "
          f"lung Dice {rows['ibsi_lung']['onnxruntime'].dice:.4f}")
    if args.write:
        where = (f"{platform.processor() or platform.machine()}, {args.threads} threads, "
                 f"ONNX Runtime CPU, original grid")
        card.metrics["validation_dice_cpu_onnx"] = {
            "per_case": {r.case_id: r.dice for r in val}, "mean": round(mean, 4),
            "evaluated_on": where,
        }
        card.metrics["cpu_seconds_per_case"] = {
            "per_case": {r.case_id: r.seconds for r in val}, "median": round(secs, 2),
            "threads": args.threads, "backend": "onnxruntime",
            "includes": "resample to model grid, sliding windows, resample back, threshold",
            "ratio_vs_torch_cpu": round(ratio, 2),
            "command": "python benchmarks/eval_model.py --threads "
                       f"{args.threads} --write",
        }
        lr = rows["ibsi_lung"]["onnxruntime"]
        card.metrics["lung_dice"] = {
            "per_case": {"ibsi_lung (IBSI CT radiomics phantom patient, GTV-1)": lr.dice},
            "note": "evaluation only (CC BY-NC 3.0), never trained on or shipped; the shared "
                    "data holds ONE lung patient, so this is one case, not two. A lung GTV "
                    "in chest CT is outside the training distribution (extremity sarcomas).",
        }
        card.save()
        print(f"wrote metrics into {card.folder / 'model.json'}")


if __name__ == "__main__":
    main()
