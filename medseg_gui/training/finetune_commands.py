"""``medseg finetune``: the command-line face of :func:`medseg_gui.training.finetune.finetune`.

It prints ``PROGRESS <fraction> <message>`` lines (:func:`.jobs.print_progress`), so the GUI runs
it as a :class:`~medseg_gui.training.jobs.Job`, e.g.
``python_job("medseg_gui.training", "finetune", "--queue")``; under ``torchrun`` every rank runs
it and rank 0 reports. Inputs that are not prepared folders yet (the queue, NIfTI training folders,
DICOM studies) are prepared into the work folder first, on one process only.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medseg_gui.io.errors import LoadError

DEFAULT_MODEL = "sts-tumour-unet"


def _is_prepared(path: str) -> bool:
    return (Path(path) / "prepared.json").is_file()


def _need_prepared(path: str) -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise LoadError(Path(path), "under torchrun every input must be a prepared folder; "
                        "run medseg finetune once without torchrun to prepare it (or "
                        "medseg train --prepare)")


def _tell(fraction: float, message: str) -> bool:
    """Progress for preparing the queue: a line naming what was left out is also printed as
    itself, so that it stays on the terminal (and in the job's output) after the progress."""
    from medseg_gui.training.jobs import print_progress

    if message.startswith(("skipped", "left out")):
        print(f"medseg finetune: {message}", flush=True)
    return print_progress(fraction, message)


def cmd_finetune(args: argparse.Namespace) -> int:
    """Run ``medseg finetune``; returns the exit code."""
    from medseg_gui.core.paths import cache_dir
    from medseg_gui.inference.registry import ModelRegistry
    from medseg_gui.training.data import prepare_folder
    from medseg_gui.training.finetune import FinetuneConfig, finetune
    from medseg_gui.training.finetune_data import prepare_queue, prepare_unlabeled
    from medseg_gui.training.jobs import print_progress

    registry = ModelRegistry(user=args.models) if args.models else ModelRegistry()
    if args.base and (Path(args.base) / "model.json").is_file():
        from medseg_gui.inference.model_card import load_card
        from medseg_gui.inference.registry import ModelVersion

        base = ModelVersion(load_card(args.base), "folder")
    elif args.base:
        base = registry.find(args.base)
    else:
        found = registry.active(DEFAULT_MODEL)
        if found is None:
            raise LoadError(Path(DEFAULT_MODEL), "no active model to fine-tune; pass --from")
        base = found
    card = base.card
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    version = args.version or f"{card.version}-ft.{stamp}"
    out = Path(args.out) if args.out else registry.user / card.model_id / version
    work = Path(args.work) if args.work else cache_dir() / "finetune" / f"{card.model_id}-{version}"
    if card.promptable:
        return _finetune_prompt(args, base, out, work, version)
    norm = card.normalisation
    labelled: list[str] = []
    queue_items: list[int] = []
    if args.queue is not None:
        _need_prepared("queue")
        from medseg_gui.training.finetune_data import select_queue
        from medseg_gui.training.queue import TrainingQueue

        with TrainingQueue(args.queue or None) as queue:
            labelled.append(str(prepare_queue(queue, work / "queue", card, _tell,
                                              any_status=args.any_status).folder))
            queue_items = [c.item.id for c in select_queue(queue, args.any_status)[0]]
    for n, data in enumerate(args.data or []):
        if not _is_prepared(data):
            _need_prepared(data)
            data = str(prepare_folder(data, work / f"data{n}", card.spacing,
                                      (norm.low, norm.high), print_progress).folder)
        labelled.append(data)
    if not labelled:
        raise LoadError(Path("."), "nothing to train on: pass --queue and/or --data DIR")
    unlabeled: list[str] = []
    loose: list[str] = []
    for src in args.unlabeled or []:
        (unlabeled if _is_prepared(src) else loose).append(src)
    if loose:
        _need_prepared(loose[0])
        unlabeled.append(str(prepare_unlabeled(loose, work / "unlabeled", card,
                                               print_progress).folder))
    validation = args.validation_data or ""
    if not validation and args.queue is not None and not args.data:
        raise LoadError(Path("."), f"--validation-data DIR: the held-out cases of {card.ref} "
                        "are not in the queue; name the folder that holds them")
    cfg = FinetuneConfig(
        base=str(card.folder), out=str(out), labelled=tuple(labelled),
        unlabeled=tuple(unlabeled), validation_data=validation or labelled[-1], version=version,
        steps=args.steps or 500, lr=args.lr or 3e-4, consistency_weight=args.consistency_weight,
        seed=args.seed, workers=args.workers, device=args.device, amp=not args.no_amp,
        log_every=args.log_every, command=shlex.join(["medseg", *sys.argv[1:]]))
    new = finetune(cfg, print_progress)
    if new is None:  # a torchrun rank other than 0
        return 0
    if queue_items:
        from medseg_gui.training.queue import QueueStatus, TrainingQueue

        with TrainingQueue(args.queue or None) as queue:
            for item_id in queue_items:
                queue.set_status(item_id, QueueStatus.USED)
    dice = new.metrics["validation_dice"]["mean"]
    print(f"wrote {new.folder}: model {new.ref}, mean validation Dice {dice:.3f} "
          f"({card.ref}: {base.validation_dice}); promote it with medseg models promote "
          f"{new.ref}", flush=True)
    return 0


def _finetune_prompt(args: argparse.Namespace, base: Any, out: Path, work: Path,
                     version: str) -> int:
    """The promptable model's fine-tune (:mod:`.prompt_finetune`): simulated users on the
    corrected masks, gated on held-out interactive Dice."""
    from medseg_gui.training.finetune_data import select_queue
    from medseg_gui.training.jobs import print_progress
    from medseg_gui.training.prompt_finetune import (
        PromptFinetuneConfig,
        finetune_prompt,
        prepare_queue_objects,
    )
    from medseg_gui.training.queue import QueueStatus, TrainingQueue

    card = base.card
    labelled: list[str] = []
    queue_items: list[int] = []
    if args.queue is not None:
        with TrainingQueue(args.queue or None) as queue:
            labelled.append(str(prepare_queue_objects(queue, work / "queue", card, _tell,
                                                      any_status=args.any_status).folder))
            queue_items = [c.item.id for c in select_queue(queue, args.any_status)[0]]
    for data in args.data or []:
        if not (Path(data) / "objects.json").is_file():
            raise LoadError(Path(data), f"{card.ref} is promptable: --data must be a prepared "
                            "object set (medseg train-prompt --prepare)")
        labelled.append(data)
    if not labelled:
        raise LoadError(Path("."), "nothing to train on: pass --queue and/or --data DIR")
    if not args.validation_data:
        raise LoadError(Path("."), f"--validation-data DIR: a prepared set holding the held-out "
                        f"objects of {card.ref} (medseg train-prompt --prepare ../shared/data "
                        "--splits validation --data DIR)")
    cfg = PromptFinetuneConfig(
        base=str(card.folder), out=str(out), labelled=tuple(labelled),
        validation_data=args.validation_data, version=version, steps=args.steps or 200,
        lr=args.lr or 1e-4, seed=args.seed, device=args.device, amp=not args.no_amp,
        log_every=args.log_every, command=shlex.join(["medseg", *sys.argv[1:]]))
    new = finetune_prompt(cfg, print_progress)
    if queue_items:
        with TrainingQueue(args.queue or None) as queue:
            for item_id in queue_items:
                queue.set_status(item_id, QueueStatus.USED)
    dice = new.metrics["validation_dice"]["mean"]
    same = new.metrics["base_validation_dice_same_run"]
    print(f"wrote {new.folder}: model {new.ref}, held-out Dice after 3 simulated clicks "
          f"{dice:.3f} ({card.ref}: {same:.3f} in the same run); promote it with medseg models "
          f"promote {new.ref}", flush=True)
    return 0


def add_commands(subparsers: Any) -> None:
    """Register ``finetune`` on ``subparsers`` (what ``ArgumentParser.add_subparsers`` returns)."""
    p = subparsers.add_parser(
        "finetune", help="fine-tune a model version on corrected cases (and unlabelled studies)")
    p.add_argument("--from", dest="base", metavar="MODEL:VERSION",
                   help=f"version (or model folder) to start from (default: the active "
                        f"{DEFAULT_MODEL})")
    p.add_argument("--queue", nargs="?", const="", default=None, metavar="ROOT",
                   help="train on the training queue's corrections (default queue folder)")
    p.add_argument("--data", nargs="+", metavar="DIR",
                   help="labelled cases: a prepared folder or <case>/CT_image+CT_mask folders")
    p.add_argument("--unlabeled", nargs="+", metavar="DIR",
                   help="unlabelled studies for the mean-teacher term: prepared folders (masks "
                        "ignored), DICOM folders or image files")
    p.add_argument("--any-status", action="store_true",
                   help="learn from every queued segment, not only completed ones")
    p.add_argument("--validation-data", metavar="DIR",
                   help="prepared folder holding the base's held-out cases (default: --data)")
    p.add_argument("--steps", type=int, help="optimizer steps (500; a promptable model: 200)")
    p.add_argument("--lr", type=float,
                   help="peak AdamW learning rate (3e-4; a promptable model: 1e-4)")
    p.add_argument("--consistency-weight", type=float, default=1.0,
                   help="weight of the mean-teacher term after ramp-up (1.0; 0 turns it off)")
    p.add_argument("--out", help="new model folder (default: the user model folder)")
    p.add_argument("--version", help="version name (default: <base version>-ft.<UTC time>)")
    p.add_argument("--models", help="user model folder of the registry (default: data folder)")
    p.add_argument("--work", help="prepared inputs (default: the user cache)")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--workers", type=int, default=4, help="data-loader processes (4)")
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--no-amp", action="store_true", help="no bfloat16 autocast on the GPU")
    p.set_defaults(func=cmd_finetune)
