"""Does fine-tuning on queued corrections help, and does the mean-teacher term add to it?

One command, run on a GPU machine from the repository root::

    python benchmarks/finetune_experiment.py --out /tmp/ftexp

It (a) trains a base model on 8 of the 20 training cases of the shipped model's split
(``engines/sts-tumour-unet/1.0.0``) for ``--base-steps`` steps; (b) fine-tunes it on the 12 other
training cases as *queued corrections* (their ground-truth masks stand for the corrected drafts),
supervised only; (c) the same plus the mean-teacher term on the unlabelled pool: the two CRLM
abdominal CTs and the 20 training STS images without their masks. (b) and (c) run the same steps
with the same seed. A control continues the base on its own 8 cases for the same steps, so that
the gain of (b) is not mistaken for the gain of training longer. All are scored on the shipped
model's 8 held-out cases (STS_008 among them), which none of them sees, not even unlabelled.

Inputs (``--inputs``, default ``.ftdata``) are made once on a machine with SimpleITK and pydicom
(the same command prepares them when they are missing): the 12 corrections go through the real
:class:`~medseg_gui.training.queue.TrainingQueue` (de-identified NIfTI written atomically,
pseudonymous ids, no source identifiers: the IBSI NIfTI files carry none) and are prepared from
the queue's files; the CRLM DICOM series are prepared as unlabelled volumes; the base subset and
the held-out cases are copied from the prepared STS folder (``.traindata``). The queue items hold
no drafts: the base model does not exist when they are queued, so the base model's Dice on them
is reported instead (``draft_dice``). Results go to ``OUT/results.json`` and ``OUT/results.md``.

``--base-recipe hardneg+zoom`` trains the base with the shipped model's recipe; ``--recipe-check``
then replaces (c) and the control by one more supervised fine-tune from a copy of the base whose
card names no recipe, i.e. with the 1:1 sampling anywhere and per-axis scaling that fine-tuning
used before it followed its base's recipe: same steps, seed and corrections.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHIPPED = ROOT / "engines" / "sts-tumour-unet" / "1.0.0"
RECIPES: dict[str, dict[str, Any]] = {
    "default": {},
    "hardneg+zoom": {"neg_ratio": 2.0, "bg_min_hu": -100.0, "zoom": (0.8, 1.25)},
}
SHARED = ROOT.parent / "shared" / "data"


def log(fraction: float, message: str) -> bool:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)
    return True


def split_of_shipped() -> tuple[list[str], list[str], list[str]]:
    """(base subset, corrections, held-out) from the shipped card, fixed by the seed 0."""
    card = json.loads((SHIPPED / "model.json").read_text())
    train = sorted(card["training"]["split"]["train"])
    val = sorted(card["metrics"]["validation_dice"]["per_case"])
    base = sorted(random.Random(0).sample(train, 8))
    return base, [c for c in train if c not in base], val


def prepare_inputs(inputs: Path, sts: Path) -> None:
    """Queue the corrections, prepare queue and CRLM, copy the base subset + held-out cases."""
    from medseg_gui.inference.model_card import load_card
    from medseg_gui.io.imagefile import read_image
    from medseg_gui.training.finetune_data import prepare_queue, prepare_unlabeled
    from medseg_gui.training.queue import TrainingQueue

    card = load_card(SHIPPED)
    base, corrections, val = split_of_shipped()
    out = inputs / "sts"
    out.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((sts / "prepared.json").read_text())
    for c in base + val:
        for suffix in (".npz.xz", ".json"):
            shutil.copy2(sts / f"{c}{suffix}", out / f"{c}{suffix}")
    (out / "prepared.json").write_text(json.dumps(
        {**manifest, "cases": base + val, "source": f"{manifest['source']} (base subset and "
         "held-out cases of the fine-tuning experiment)"}, indent=2))
    with TrainingQueue(inputs / "queue_db") as queue:
        if not queue.items():
            for c in corrections:
                folder = SHARED / "ibsi_sts" / "nifti" / c
                image, mask = read_image(folder / "CT_image.nii.gz"), read_image(
                    folder / "CT_mask.nii.gz")
                pseudonym = hashlib.sha256(f"ftexp:{c}".encode()).hexdigest()[:16]
                queue.add(image.array, image.geometry, mask.array,
                          metadata={"source": "IBSI STS NIfTI (no identifying headers)"},
                          patient=pseudonym, model_ref="sts-experiment:0.1.0",
                          annotator="ground truth (experiment)")
                log(0, f"queued {c}")
        # Reference masks queued without a segment table carry no review status.
        prepare_queue(queue, inputs / "queue", card, log, any_status=True)
    crlm = SHARED / "crlm_unlabeled"
    prepare_unlabeled(sorted(p for p in crlm.iterdir() if p.is_dir()), inputs / "crlm", card, log)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from medseg_gui.training.config import TrainConfig
    from medseg_gui.training.data import open_prepared
    from medseg_gui.training.evaluate import validate
    from medseg_gui.training.finetune import FinetuneConfig, finetune
    from medseg_gui.training.trainer import train

    inputs, out = Path(args.inputs), Path(args.out)
    engines = out / "engines" / "sts-experiment"
    base_ids, corrections, val_ids = split_of_shipped()
    t0 = time.perf_counter()
    base_cfg = TrainConfig(data=str(inputs / "sts"), out=str(engines / "0.1.0"),
                           work=str(out / "work-base"), model_id="sts-experiment",
                           version="0.1.0", steps=args.base_steps, workers=args.workers,
                           log_every=250, checkpoint_every=10**9, seed=args.seed,
                           command="benchmarks/finetune_experiment.py (a)",
                           **RECIPES[args.base_recipe])
    base = train(base_cfg, log)
    assert sorted(base.metrics["validation_dice"]["per_case"]) == val_ids
    t_base = time.perf_counter() - t0
    # The base model's Dice on the queued cases: how much its drafts needed correcting.
    import torch

    from medseg_gui.inference.network import build_network, load_weights

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net = load_weights(build_network(base.architecture), base.weights_path).to(device).eval()
    queue = open_prepared(inputs / "queue")
    drafts = validate(net, base, [queue.load(c) for c in queue.cases], device,
                      device.type == "cuda")
    runs: dict[str, Any] = {}
    pool = (str(inputs / "queue"), str(inputs / "sts"), str(inputs / "crlm"))
    plans: list[tuple[str, str, tuple[str, ...], Path]] = [
        ("supervised", "queue", (), base.folder)]
    if args.recipe_check:
        plans.append(("supervised, no base recipe", "queue", (), _without_recipe(base.folder)))
    else:
        plans.append(("semi-supervised", "queue", pool, base.folder))
    if args.control and not args.recipe_check:
        plans.append(("control: base cases again", "sts", (), base.folder))
    for name, labelled, unlabeled, start in plans:
        t = time.perf_counter()
        slug = name.split(":")[0].replace(", ", "-").replace(" ", "-")
        cfg = FinetuneConfig(base=str(start), out=str(engines / f"0.1.1-{slug}"),
                             labelled=(str(inputs / labelled),), unlabeled=unlabeled,
                             validation_data=str(inputs / "sts"), steps=args.ft_steps,
                             seed=args.seed, workers=args.workers, log_every=250,
                             command=f"benchmarks/finetune_experiment.py ({name})")
        card = finetune(cfg, log)
        assert card is not None
        runs[name] = {"card": card, "seconds": round(time.perf_counter() - t, 1)}
    table = {"base": base.metrics["validation_dice"]}
    table.update({k: v["card"].metrics["validation_dice"] for k, v in runs.items()})
    semi = "semi-supervised" in table
    keep = semi and table["semi-supervised"]["mean"] > table["supervised"]["mean"]
    result = {
        "command": " ".join(["python", *sys.argv]), "seed": args.seed,
        "device": base.training["device"], "base_cases": base_ids, "corrections": corrections,
        "held_out": val_ids, "base_steps": args.base_steps, "finetune_steps": args.ft_steps,
        "base_recipe": base.training["recipe"],
        "unlabeled": runs["semi-supervised"]["card"].training["unlabeled_cases"] if semi else [],
        "dice": {k: {"mean": v["mean"], "per_case": v["per_case"]} for k, v in table.items()},
        "draft_dice_on_queued_cases": {"mean": drafts["mean"], "per_case": drafts["per_case"]},
        "seconds": {"base": round(t_base, 1), **{k: v["seconds"] for k, v in runs.items()}},
        "keep_consistency_term": keep,
    }
    (out / "results.json").write_text(json.dumps(result, indent=2))
    (out / "results.md").write_text(markdown(result))
    print(markdown(result))
    return result


def _without_recipe(folder: Path) -> Path:
    """A copy of a model folder whose card names no recipe (the files, and so their hashes, are
    the same): fine-tuning it samples with the defaults."""
    copy = folder.with_name(folder.name + "-no-recipe")
    shutil.copytree(folder, copy, dirs_exist_ok=True)
    card = json.loads((copy / "model.json").read_text())
    card["training"].pop("recipe")
    (copy / "model.json").write_text(json.dumps(card, indent=2))
    return copy


def markdown(r: dict[str, Any]) -> str:
    cols = list(r["dice"])
    lines = ["| held-out case | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for c in r["held_out"]:
        lines.append(f"| {c} | " + " | ".join(f"{r['dice'][k]['per_case'][c]:.3f}"
                                               for k in cols) + " |")
    lines.append("| **mean** | " + " | ".join(f"**{r['dice'][k]['mean']:.3f}**" for k in cols)
                 + " |")
    lines += ["", f"device: {r['device']}; steps: base {r['base_steps']}, fine-tunes "
              f"{r['finetune_steps']} each; seconds {r['seconds']}; seed {r['seed']}; "
              f"base recipe {r['base_recipe']}",
              f"base model's mean Dice on the queued cases (draft quality): "
              f"{r['draft_dice_on_queued_cases']['mean']:.3f}",
              f"mean-teacher term kept: {r['keep_consistency_term']}", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="/tmp/ftexp", help="results and model folders")
    p.add_argument("--inputs", default=str(ROOT / ".ftdata"), help="prepared inputs")
    p.add_argument("--sts", default=str(ROOT / ".traindata"), help="prepared STS cases")
    p.add_argument("--base-steps", type=int, default=1500)
    p.add_argument("--ft-steps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--workers", type=int, default=12)
    p.add_argument("--no-control", dest="control", action="store_false",
                   help="skip the control: the base trained as many more steps on its own cases")
    p.add_argument("--base-recipe", choices=list(RECIPES), default="default")
    p.add_argument("--recipe-check", action="store_true",
                   help="fine-tune with and without the base's recipe instead of (c) and control")
    p.add_argument("--prepare-only", action="store_true", help="make the inputs, then stop")
    args = p.parse_args()
    inputs = Path(args.inputs)
    if not all((inputs / d / "prepared.json").is_file() for d in ("sts", "queue", "crlm")):
        prepare_inputs(inputs, Path(args.sts))
    if not args.prepare_only:
        run(args)


if __name__ == "__main__":
    main()
