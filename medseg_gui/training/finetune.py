"""Fine-tuning a model version: supervised Dice + CE, optionally plus a mean-teacher term.

The student starts from the base version's weights and learns on labelled cases (queued
corrections) with the supervised recipe of :mod:`.trainer`: the patch sampling and augmentation the
base card records (``training["recipe"]``, e.g. the hard negatives and zoom of the shipped model;
the defaults for older cards), ``DiceCELoss`` over the voxels whose truth is known
(:mod:`.masked_loss`: segments a reader left unfinished are ignored, not background), AdamW,
warm-up then polynomial decay, bfloat16 autocast on a GPU. With unlabelled volumes it also learns
to agree with a *teacher*, an exponential moving average of its own weights (Tarvainen & Valpola
2017): both see the same body-centred, flipped patch; the teacher the weak view, the student a
strong one (Gaussian noise, intensity scale and shift); the term is the MSE between their softmax
outputs, weighted by ``w * exp(-5 (1 - t)^2)`` over the ramp-up.

Small data and normalisation: the shipped UNet uses instance normalisation, which has no running
statistics, so nothing can drift; a batch-norm network would have its statistics frozen (eval
mode, affine parameters still trained), because re-estimating them from a few patches of a
handful of cases undoes what the base learnt. Under ``torchrun`` (``WORLD_SIZE > 1``) each rank
trains on its share of the cases inside ``DistributedDataParallel``; only rank 0 validates and
writes. Validation uses the base card's held-out cases and inference settings, so the registry
can compare the versions; held-out cases are never trained on, not even unlabelled.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from monai.data.dataloader import DataLoader
from monai.utils.misc import set_determinism
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from medseg_gui.core.progress import Cancelled, Progress, no_progress
from medseg_gui.inference.model_card import ModelCard, load_card
from medseg_gui.inference.network import build_network, load_weights
from medseg_gui.io.errors import LoadError
from medseg_gui.training.config import TrainConfig
from medseg_gui.training.consistency import (
    ema_update,
    freeze_batchnorm,
    rampup,
    strong_view,
    unlabeled_loader,
)
from medseg_gui.training.data import PreparedCase, PreparedSet, open_prepared
from medseg_gui.training.evaluate import validate
from medseg_gui.training.export import write_model
from medseg_gui.training.masked_loss import KnownDiceCELoss
from medseg_gui.training.sampling import Recipe, case_item, describe, train_loader
from medseg_gui.training.trainer import _device_name


@dataclass
class FinetuneConfig:
    """What ``medseg finetune`` is asked to do. ``labelled`` and ``unlabeled`` are prepared
    folders (:mod:`.data`); ``validation_data`` holds the base's held-out cases (default: the
    first labelled folder). ``consistency_weight`` 0 or no ``unlabeled`` means supervised only."""

    base: str
    out: str
    labelled: tuple[str, ...]
    unlabeled: tuple[str, ...] = ()
    validation_data: str = ""
    version: str = ""
    steps: int = 500
    lr: float = 3e-4
    warmup_steps: int = 20
    cases_per_batch: int = 2
    samples_per_case: int = 4
    unlabeled_per_batch: int = 2
    consistency_weight: float = 1.0
    rampup_steps: int = 200
    ema_decay: float = 0.99
    seed: int = 12345
    workers: int = 4
    device: str = "auto"
    amp: bool = True
    log_every: int = 25
    command: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class _CardConfig(TrainConfig):
    """A :class:`TrainConfig` for :func:`write_model` whose architecture is the base card's."""

    arch: dict[str, Any] = field(default_factory=dict)

    def architecture(self) -> dict[str, Any]:
        return copy.deepcopy(self.arch)


def _load_cases(folders: tuple[str, ...], card: ModelCard, skip: set[str]) -> list[PreparedCase]:
    cases = []
    for folder in folders:
        ps: PreparedSet = open_prepared(folder)
        norm = card.normalisation
        if ps.spacing != card.spacing or ps.clip != (norm.low, norm.high):
            raise LoadError(Path(folder), f"prepared at {ps.spacing} mm, clip {ps.clip}; model "
                            f"{card.ref} needs {card.spacing}, ({norm.low}, {norm.high})")
        cases += [ps.load(c) for c in ps.cases if c not in skip]
    return cases


def validation_cases(card: ModelCard) -> list[str]:
    """The base card's held-out case ids (those its validation Dice was measured on)."""
    per_case = card.metrics.get("validation_dice", {}).get("per_case")
    if isinstance(per_case, dict) and per_case:
        return sorted(per_case)
    split = card.training.get("split", {})
    if split.get("validation"):
        return sorted(split["validation"])
    raise LoadError(card.folder, f"model {card.ref} records no validation cases to compare on")


def finetune(cfg: FinetuneConfig, progress: Progress = no_progress) -> ModelCard | None:
    """Fine-tune ``cfg.base`` into ``cfg.out``; return the new card (``None`` on ranks > 0)."""
    wall = time.perf_counter()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = _pick_device(cfg.device, world)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    report = progress if rank == 0 else no_progress
    base = load_card(cfg.base, verify=True)
    val_ids = validation_cases(base)
    labelled = _load_cases(cfg.labelled, base, set(val_ids))
    if not labelled:
        raise LoadError(Path(cfg.labelled[0] if cfg.labelled else "."), "no labelled cases")
    unlabeled = _load_cases(cfg.unlabeled, base, set(val_ids)) if cfg.unlabeled else []
    semi = bool(unlabeled) and cfg.consistency_weight > 0
    set_determinism(cfg.seed + rank)
    amp = cfg.amp and device.type == "cuda"
    net = load_weights(build_network(base.architecture), base.weights_path).to(device)
    frozen_bn = freeze_batchnorm(net)
    teacher = copy.deepcopy(net).eval().requires_grad_(False) if semi else None
    student: nn.Module = net
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        student = DistributedDataParallel(net, device_ids=ids)
    mine = labelled[rank::world] or [labelled[rank % len(labelled)]]
    recipe = Recipe.of_card(base.training)
    items = [case_item(c, base.normalisation, base.roi_size, recipe.bg_min_hu) for c in mine]
    loader = train_loader(items, base.roi_size, cfg.samples_per_case, cfg.cases_per_batch,
                          cfg.workers, recipe)
    u_iter = None
    if semi:
        u_mine = unlabeled[rank::world] or [unlabeled[rank % len(unlabeled)]]
        u_iter = _endless(unlabeled_loader(u_mine, base, cfg.samples_per_case,
                                           cfg.unlabeled_per_batch, cfg.workers))
    gen = torch.Generator(device=device).manual_seed(cfg.seed + rank)
    loss_fn = KnownDiceCELoss()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-5)
    report(0.02, f"fine-tuning {base.ref} on {device} ({_device_name(device)}), world {world}: "
           f"{len(labelled)} labelled, {len(unlabeled)} unlabelled cases, {cfg.steps} steps, "
           f"consistency {'on' if semi else 'off'}")
    step, losses, cons_log = 0, [], []
    net.train()
    freeze_batchnorm(net)
    t0 = time.perf_counter()
    while step < cfg.steps:
        for batch in loader:
            lr = cfg.lr * min((step + 1) / max(cfg.warmup_steps, 1),
                              max(1.0 - step / cfg.steps, 0.0) ** 0.9)
            for g in opt.param_groups:
                g["lr"] = lr
            x = batch["image"].to(device, non_blocking=True)
            y = batch["label"].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                if u_iter is not None and teacher is not None:
                    xu = next(u_iter)["image"].to(device, non_blocking=True)
                    with torch.no_grad():
                        target = torch.softmax(teacher(xu).float(), 1)
                    out = student(torch.cat([x, strong_view(xu, gen)])).float()
                    sup = loss_fn(out[: x.shape[0]], y)
                    cons = torch.mean((torch.softmax(out[x.shape[0]:], 1) - target) ** 2)
                    w = cfg.consistency_weight * rampup(step, cfg.rampup_steps)
                    loss = sup + w * cons
                    cons_log.append(float(cons.detach()))
                else:
                    loss = loss_fn(student(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if teacher is not None:
                ema_update(teacher, net, min(1.0 - 1.0 / (step + 1), cfg.ema_decay))
            step += 1
            losses.append(float(loss.detach()))
            if step % cfg.log_every == 0 or step == cfg.steps:
                recent = losses[-cfg.log_every:]
                msg = (f"step {step}/{cfg.steps} loss {sum(recent) / len(recent):.4f}"
                       + (f" consistency {cons_log[-1]:.5f}" if cons_log else "")
                       + f" lr {lr:.2e} {time.perf_counter() - t0:.0f}s")
                if not report(0.05 + 0.8 * step / cfg.steps, msg):
                    raise Cancelled(msg)
            if step >= cfg.steps:
                break
    seconds = time.perf_counter() - t0
    card = None
    if rank == 0:
        card = _finish(cfg, base, net, val_ids, labelled, unlabeled, semi, frozen_bn, device,
                       amp, world, step, losses, cons_log, seconds, wall, recipe, report)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return card


def _endless(loader: DataLoader) -> Iterator[dict[str, Any]]:
    """New random patches every pass (``itertools.cycle`` would replay the first pass)."""
    while True:
        yield from loader


def _pick_device(name: str, world: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and world > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device(name)


def _finish(cfg: FinetuneConfig, base: ModelCard, net: nn.Module, val_ids: list[str],
            labelled: list[PreparedCase], unlabeled: list[PreparedCase], semi: bool,
            frozen_bn: int, device: torch.device, amp: bool, world: int, step: int,
            losses: list[float], cons_log: list[float], seconds: float, wall: float,
            recipe: Recipe, report: Progress) -> ModelCard:
    """Validate on the base's held-out cases and write the new version (rank 0 only)."""
    folder = cfg.validation_data or cfg.labelled[0]
    ps = open_prepared(folder)
    missing = [c for c in val_ids if c not in ps.cases]
    if missing:
        raise LoadError(Path(folder), f"held-out cases of {base.ref} not found: {missing}")
    report(0.86, f"validating on the {len(val_ids)} held-out cases of {base.ref}")
    val = [ps.load(c) for c in val_ids]
    result = validate(net, base, val, device, amp)
    out = Path(cfg.out)
    tc = _CardConfig(data=folder, out=str(out), model_id=base.model_id,
                     version=cfg.version or out.name, spacing=base.spacing, roi=base.roi_size,
                     normalisation=base.normalisation, overlap=base.overlap, blend=base.blend,
                     threshold=base.threshold, arch=base.architecture)
    n = max(len(losses[-50:]), 1)
    sampling, augmentation = describe(recipe)
    training = {
        "command": cfg.command, "fine_tuned_from": base.ref,
        "base_weights_sha256": base.weights_sha256,
        "labelled_cases": sorted(c.case_id for c in labelled),
        "unlabeled_cases": sorted(c.case_id for c in unlabeled),
        "split": {"train": sorted(c.case_id for c in labelled), "validation": val_ids,
                  "rule": f"the held-out cases of {base.ref}"},
        "batch": {"cases": cfg.cases_per_batch, "patches_per_case": cfg.samples_per_case,
                  "sampling": sampling},
        "augmentation": augmentation,
        "recipe": {**recipe.to_json(), "from": base.ref},
        "consistency": {"used": semi, "method": "mean teacher (EMA of the student)",
                        "weight": cfg.consistency_weight, "rampup_steps": cfg.rampup_steps,
                        "ema_decay": cfg.ema_decay, "loss": "MSE of softmax outputs",
                        "teacher_view": "body-centred patch, random flips",
                        "student_view": "same + noise sd 25 HU, scale 0.85-1.15, shift +-0.1",
                        "final": round(sum(cons_log[-50:]) / max(len(cons_log[-50:]), 1), 6)
                        if cons_log else None},
        "normalisation_layers": f"{frozen_bn} batch-norm layers frozen" if frozen_bn
        else "instance normalisation (no running statistics to protect)",
        "steps": step, "seed": cfg.seed, "world_size": world, "device": _device_name(device),
        "precision": "bf16 autocast" if amp else "fp32", "train_seconds": round(seconds, 1),
        "wall_seconds": round(time.perf_counter() - wall, 1),
        "final_loss": round(sum(losses[-50:]) / n, 4),
        "config": {k: v for k, v in asdict(cfg).items() if k != "provenance"},
        **cfg.provenance,
    }
    metrics = {"validation_dice": {**result, "weights": "last", "evaluated_on":
                                   f"{device} (PyTorch, {'bf16 autocast' if amp else 'fp32'}), "
                                   "original grid"},
               "base_validation_dice": base.metrics.get("validation_dice", {}).get("mean")}
    card = write_model(net, tc, training, metrics, labels=base.labels,
                       intended_use=base.intended_use)
    report(1.0, f"wrote {card.folder} (mean validation Dice {result['mean']:.3f}; "
           f"{base.ref}: {metrics['base_validation_dice']})")
    return card
