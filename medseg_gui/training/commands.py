"""``medseg train``: the command-line face of :func:`medseg_gui.training.trainer.train`.

``add_commands(subparsers)`` registers the command on the ``medseg`` parser (``cli.py``);
``python -m medseg_gui.training train ...`` runs it on its own, which is how a GPU machine without
the GUI dependencies runs it. User errors raise :class:`~medseg_gui.io.errors.LoadError`, which
the caller turns into one line.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from medseg_gui.core.progress import TerminalProgress
from medseg_gui.io.errors import LoadError


def _command_line(args: argparse.Namespace) -> str:
    argv = sys.argv[1:]
    if "train" in argv[:2]:
        return shlex.join(["medseg", *argv[argv.index("train"):]])
    parts = ["medseg", "train", "--data", str(args.data), "--out", str(args.out)]
    for key, value in sorted(vars(args).items()):
        if key in ("data", "out", "func", "command") or value in (None, False):
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif isinstance(value, list | tuple):
            parts += [flag, *map(str, value)]
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)


def config_from_args(args: argparse.Namespace) -> Any:
    """A :class:`~medseg_gui.training.config.TrainConfig` from parsed arguments."""
    from medseg_gui.inference.model_card import Normalisation
    from medseg_gui.training.config import DEFAULT_NORMALISATION, TrainConfig

    out = Path(args.out)
    norm = DEFAULT_NORMALISATION
    if args.clip:
        low, high = args.clip
        norm = Normalisation(low, high, (low + high) / 2, (high - low) / 2)
    return TrainConfig(
        data=str(args.data), out=str(out), work=str(args.work or ""),
        model_id=args.model_id or out.parent.name, version=args.version or out.name,
        spacing=tuple(args.spacing), roi=tuple(args.roi), channels=tuple(args.channels),
        normalisation=norm, steps=args.steps, minutes=args.minutes,
        cases_per_batch=args.batch_cases, samples_per_case=args.patches_per_case,
        neg_ratio=args.neg_ratio, bg_min_hu=args.bg_min_hu,
        zoom=tuple(args.zoom) if args.zoom else None, lr=args.lr,
        seed=args.seed, val_fraction=args.val_fraction,
        force_validation=tuple(args.force_validation), workers=args.workers,
        checkpoint_every=args.checkpoint_every, log_every=args.log_every, resume=args.resume,
        val_every=args.val_every, select=args.select,
        device=args.device, amp=not args.no_amp, command=_command_line(args),
    )


def cmd_train(args: argparse.Namespace) -> int:
    from medseg_gui.training.config import DEFAULT_NORMALISATION
    from medseg_gui.training.data import prepare_folder

    progress = TerminalProgress(sys.stdout, log=True)  # a log: every report is a line
    if args.prepare:
        norm = DEFAULT_NORMALISATION
        low, high = args.clip or (norm.low, norm.high)
        done = prepare_folder(args.data, args.prepare, args.spacing, (low, high),
                              progress, command=_command_line(args))
        print(f"prepared {len(done.cases)} cases in {done.folder} (data sha256 "
              f"{done.data_sha256[:16]}...)")
        return 0
    if not args.out:
        raise LoadError(Path("."), "--out engines/<model-id>/<version> is required")
    from medseg_gui.training.trainer import train

    card = train(config_from_args(args), progress)
    mean = card.metrics["validation_dice"]["mean"]
    print(f"wrote {card.folder}: model {card.ref}, mean validation Dice {mean:.3f}")
    return 0


def add_commands(subparsers: Any) -> None:
    """Register ``train`` on ``subparsers`` (what ``ArgumentParser.add_subparsers`` returns)."""
    p = subparsers.add_parser(
        "train", help="train a tumour model from image/mask pairs into engines/<id>/<version>")
    p.add_argument("--data", required=True,
                   help="folder of <case>/CT_image.nii.gz + CT_mask.nii.gz, or a prepared folder")
    p.add_argument("--out", help="model folder to write, e.g. engines/sts-tumour-unet/1.0.0")
    p.add_argument("--work", help="prepared cases and checkpoints (default: the user cache)")
    p.add_argument("--prepare", metavar="DIR",
                   help="only resample the cases onto the model grid into DIR, then stop")
    p.add_argument("--model-id", help="default: the parent folder name of --out")
    p.add_argument("--version", help="default: the folder name of --out")
    p.add_argument("--steps", type=int, default=2000, help="most optimizer steps (2000)")
    p.add_argument("--minutes", type=float, default=0.0,
                   help="fit training into this many minutes (fewer steps if needed)")
    p.add_argument("--spacing", type=float, nargs=3, default=(1.0, 1.0, 3.0),
                   metavar=("I", "J", "K"), help="model voxel size in mm (1 1 3)")
    p.add_argument("--roi", type=int, nargs=3, default=(32, 128, 128), metavar=("K", "J", "I"),
                   help="patch and window size in array order (32 128 128)")
    p.add_argument("--channels", type=int, nargs="+", default=(16, 32, 64, 128, 128),
                   help="UNet channels per level (16 32 64 128 128)")
    p.add_argument("--clip", type=float, nargs=2, metavar=("LOW", "HIGH"),
                   help="HU window, mapped to [-1, 1] (default -200 300)")
    p.add_argument("--batch-cases", type=int, default=2, help="cases per batch (2)")
    p.add_argument("--patches-per-case", type=int, default=4, help="patches per case (4)")
    p.add_argument("--neg-ratio", type=float, default=1.0,
                   help="background patches per tumour-centred patch (1)")
    p.add_argument("--bg-min-hu", type=float, metavar="HU",
                   help="centre background patches only above this HU (e.g. -100: muscle, "
                        "not fat)")
    p.add_argument("--zoom", type=float, nargs=2, metavar=("MIN", "MAX"),
                   help="isotropic random zoom range instead of per-axis scaling (e.g. 0.8 1.25)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak AdamW learning rate (1e-3)")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of the hash range that goes to validation (0.2)")
    p.add_argument("--force-validation", nargs="*", default=["STS_008"], metavar="CASE",
                   help="cases always in validation (STS_008, the demo study)")
    p.add_argument("--workers", type=int, default=4, help="data-loader processes (4)")
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--val-every", type=int, default=0,
                   help="score the validation cases every N steps (0: only at the end)")
    p.add_argument("--select", choices=("last", "best"), default="last",
                   help="ship the last weights or those of the best periodic validation")
    p.add_argument("--resume", action="store_true", help="continue from the work checkpoint")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--no-amp", action="store_true", help="no bfloat16 autocast on the GPU")
    p.set_defaults(func=cmd_train)
