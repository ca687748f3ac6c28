"""``medseg train-prompt``: prepare, train (resumably) and assemble the promptable model.

Three uses, one command::

    medseg train-prompt --prepare ../shared/data --data .ptdata/train [--synthetic]  # CPU, once
    medseg train-prompt --data .ptdata/train --out engines/prompt-unet/1.0.0 --work W \\
        --steps 12000 --minutes 9 [--resume]                              # on a GPU
    medseg train-prompt --assemble W/transfer --out engines/prompt-unet/1.0.0   # anywhere

``python -m medseg_gui.training train-prompt ...`` runs it without the GUI packages (what a GPU
machine has). Progress lines go to stdout.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from medseg_gui.io.errors import LoadError

_START = time.perf_counter()


def _print(fraction: float, message: str) -> bool:
    print(f"[{fraction * 100:5.1f}% {time.perf_counter() - _START:6.0f}s] {message}", flush=True)
    return True


def cmd_train_prompt(args: argparse.Namespace) -> int:
    from medseg_gui.inference.prompt_encoding import PromptConfig
    from medseg_gui.training.prompt_trainer import PromptTrainConfig, assemble, train_prompt

    command = shlex.join(["medseg", "train-prompt", *sys.argv[sys.argv.index(
        "train-prompt") + 1:]]) if "train-prompt" in sys.argv else "medseg train-prompt"
    prompt = PromptConfig(spacing=tuple(args.spacing), patch=tuple(args.patch))
    if args.prepare:
        from medseg_gui.training.interactive_data import prepare_interactive

        if not args.data:
            raise LoadError(Path("."), "--prepare needs --data DIR: where to write the set")
        if not args.synthetic_only:
            done = prepare_interactive(args.prepare, args.data, prompt.spacing,
                                       splits=tuple(args.splits), progress=_print,
                                       command=command)
        if args.synthetic or args.synthetic_only:
            from medseg_gui.training.synthetic_data import prepare_synthetic

            done = prepare_synthetic(args.prepare, args.data, prompt.spacing,
                                     splits=tuple(args.splits), seed=args.synthetic_seed,
                                     variants=args.synthetic_variants, progress=_print,
                                     command="" if not args.synthetic_only else command)
        print(f"prepared {len(done.cases)} cases into {done.folder}: {done.summary()}")
        return 0
    if args.merge:
        from medseg_gui.training.interactive_data import merge_prepared

        if not args.data:
            raise LoadError(Path("."), "--merge needs --data DIR: where to write the set")
        done = merge_prepared(args.merge, args.data)
        print(f"merged {len(done.cases)} cases into {done.folder}: {done.summary()}")
        return 0
    if args.assemble:
        if not args.out:
            raise LoadError(Path(args.assemble), "--assemble needs --out MODEL_FOLDER")
        card = assemble(args.assemble, args.out, model_id=args.model_id, version=args.version,
                        validation_data=args.validation_data, progress=_print)
        val = card.metrics.get("validation_dice")
        print(f"wrote {card.folder}: model {card.ref}"
              + (f", validation Dice@3 {val['mean']}" if val else ""))
        return 0
    if not (args.data and args.out):
        raise LoadError(Path("."), "training needs --data PREPARED_SET and --out MODEL_FOLDER")
    out = Path(args.out)
    cfg = PromptTrainConfig(
        data=args.data, out=str(out), work=args.work or str(out.parent / f".work-{out.name}"),
        model_id=args.model_id or out.parent.name, version=args.version or out.name,
        channels=tuple(args.channels), prompt=prompt, steps=args.steps, minutes=args.minutes,
        budget_minutes=args.budget_minutes, schedule_file=args.schedule_file or "",
        batch=args.batch, lr=args.lr, seed=args.seed, resume=args.resume, device=args.device,
        log_every=args.log_every, export=not args.no_export, command=command,
        odds=_odds(args.odds) if args.odds else None)
    trained = train_prompt(cfg, _print)
    if trained is not None:
        print(f"wrote {trained.folder}: model {trained.ref}")
    return 0


def _odds(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        group, _, weight = item.partition("=")
        try:
            out[group] = float(weight)
        except ValueError:
            raise LoadError(Path("."), f"--odds {item!r}: expected GROUP=WEIGHT, "
                                       "e.g. sarcoma/tumour=0.35") from None
        if out[group] < 0 or "/" not in group:
            raise LoadError(Path("."), f"--odds {item!r}: expected collection/kind=WEIGHT >= 0")
    return out


def add_commands(subparsers: Any) -> None:
    """Register ``train-prompt`` on ``subparsers``."""
    p = subparsers.add_parser("train-prompt", help="train the promptable model with simulated "
                              "users (or prepare its data, or assemble a transfer bundle)")
    p.add_argument("--prepare", metavar="SHARED", help="prepare the objects of SHARED "
                   "(../shared/data) into --data and stop")
    p.add_argument("--splits", nargs="+", default=["train"],
                   choices=("train", "validation", "test"), help="splits to prepare (train)")
    p.add_argument("--merge", nargs="+", metavar="SET", help="merge these prepared sets "
                   "into --data (links to their case files) and stop")
    p.add_argument("--synthetic", action="store_true", help="with --prepare: add synthetic "
                   "lung and liver lesions in the hosts of the same splits")
    p.add_argument("--synthetic-only", action="store_true",
                   help="with --prepare: only the synthetic cases (into a new or existing set)")
    p.add_argument("--synthetic-seed", type=int, default=2126)
    p.add_argument("--synthetic-variants", type=int, default=8,
                   help="variants (lesion draws) per abdominal host")
    p.add_argument("--data", help="prepared set (objects.json)")
    p.add_argument("--out", help="model folder to write, engines/<model-id>/<version>")
    p.add_argument("--work", help="checkpoints and the transfer bundle (default: beside --out)")
    p.add_argument("--assemble", metavar="BUNDLE", help="write --out from a transfer bundle")
    p.add_argument("--validation-data", metavar="SET", help="with --assemble: put the "
                   "validation Dice (3 simulated clicks, ONNX Runtime) of this prepared set's "
                   "validation cases into the card")
    p.add_argument("--model-id")
    p.add_argument("--version")
    p.add_argument("--channels", type=int, nargs="+", default=[24, 48, 96, 192, 320])
    p.add_argument("--spacing", type=float, nargs=3, default=[1.5, 1.5, 3.0],
                   metavar=("I", "J", "K"), help="crop spacing at zoom 1, mm")
    p.add_argument("--patch", type=int, nargs=3, default=[32, 128, 128],
                   metavar=("K", "J", "I"), help="crop size in voxels")
    p.add_argument("--steps", type=int, default=12000, help="length of the schedule")
    p.add_argument("--minutes", type=float, default=0.0,
                   help="stop (checkpointed) after this many minutes; --resume continues")
    p.add_argument("--budget-minutes", type=float, default=0.0,
                   help="fit the schedule to this many minutes of training in all")
    p.add_argument("--schedule-file", metavar="FILE", help="with --budget-minutes: the first "
                   "run to fit its schedule writes its length here and runs started beside it "
                   "take that length (same steps for runs compared with each other)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--odds", nargs="+", metavar="GROUP=W",
                   help="odds per collection/kind group, e.g. sarcoma/tumour=0.35 (a group "
                        "not named gets an equal share; default: prompt_sampler.GROUP_ODDS)")
    p.add_argument("--no-export", action="store_true",
                   help="write only the transfer bundle, not the model folder")
    p.set_defaults(func=cmd_train_prompt)
