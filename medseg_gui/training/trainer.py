"""The supervised training run behind ``medseg train``.

Prepare (or reuse) the cases on the model grid, split them by the fixed rule, train a MONAI UNet on
balanced patches with Dice + cross-entropy (``DiceCELoss`` over the voxels not ignored:
:mod:`.masked_loss`) under AdamW with a linear warm-up and polynomial decay, in bfloat16 autocast
on a GPU, checkpointing every ``checkpoint_every`` steps; then score every validation case on its
original grid and write the model folder (weights, ONNX, card). Progress goes through the
project's ``progress(fraction, message) -> bool`` protocol, one message per ``log_every`` steps,
and a ``False`` answer stops the run after saving a checkpoint.
"""

from __future__ import annotations

import logging
import platform
import time
from pathlib import Path
from typing import Any

import monai
import torch
from monai.utils.misc import set_determinism

from medseg_gui.core.progress import Cancelled, Progress, no_progress, scaled
from medseg_gui.inference.model_card import ModelCard
from medseg_gui.inference.network import (
    build_network,
    load_weights,
    save_weights,
)
from medseg_gui.io.errors import LoadError
from medseg_gui.training.checkpoint import (
    BEST,
    STATE,
    TrainState,
    load_checkpoint,
    save_checkpoint,
)
from medseg_gui.training.config import TrainConfig
from medseg_gui.training.data import (
    PreparedCase,
    PreparedSet,
    Split,
    open_prepared,
    prepare_folder,
    split_cases,
)
from medseg_gui.training.evaluate import validate
from medseg_gui.training.export import write_model
from medseg_gui.training.masked_loss import KnownDiceCELoss
from medseg_gui.training.sampling import case_item, describe, train_loader

log = logging.getLogger(__name__)
CALIBRATE_FROM, CALIBRATE_TO = 10, 40  # steps timed to fit a --minutes budget


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def learning_rate(cfg: TrainConfig, step: int, total: int) -> float:
    """Linear warm-up over ``warmup_steps``, then ``(1 - t)^0.9`` decay to zero at ``total``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(total - cfg.warmup_steps, 1)
    return float(cfg.lr * max(1.0 - t, 0.0) ** 0.9)


def open_data(cfg: TrainConfig, progress: Progress) -> PreparedSet:
    """``cfg.data`` as a prepared folder, preparing it under the work folder when it is NIfTI."""
    norm = cfg.normalisation
    if (Path(cfg.data) / "prepared.json").is_file():
        prepared = open_prepared(cfg.data)
        if prepared.spacing != cfg.spacing or prepared.clip != (norm.low, norm.high):
            raise LoadError(Path(cfg.data), f"prepared at spacing {prepared.spacing}, clip "
                            f"{prepared.clip}; this run needs {cfg.spacing}, "
                            f"{(norm.low, norm.high)}: prepare it again from the NIfTI folder")
        return prepared
    return prepare_folder(cfg.data, cfg.work_dir / "prepared", cfg.spacing,
                          (norm.low, norm.high), progress)


def _start_state(cfg: TrainConfig, split: Split, net: torch.nn.Module,
                 opt: torch.optim.Optimizer) -> TrainState:
    ckpt = cfg.work_dir / "checkpoint"
    state = TrainState(split=split.to_json(), config=cfg.to_json(), total_steps=cfg.steps)
    if not cfg.resume:
        return state
    if not (ckpt / STATE).is_file():
        raise LoadError(ckpt, "--resume: no checkpoint in the work folder")
    state = load_checkpoint(ckpt, net, opt)
    if Split.from_json(state.split) != split:
        raise LoadError(ckpt, "--resume: the checkpoint was trained on another split")
    state.total_steps = max(cfg.steps, state.step)
    return state


def train(cfg: TrainConfig, progress: Progress = no_progress) -> ModelCard:
    """Run ``cfg`` to the end and return the card of the written model folder."""
    wall_start = time.perf_counter()
    device = pick_device(cfg.device)
    prepared = open_data(cfg, scaled(progress, 0.0, 0.05))
    split = split_cases(prepared.cases, cfg.val_fraction, cfg.force_validation)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    set_determinism(cfg.seed)
    net = build_network(cfg.architecture()).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    state = _start_state(cfg, split, net, opt)
    if state.step:
        set_determinism(cfg.seed + state.step)  # new patches after a resume, not a replay
        progress(0.05, f"resumed at step {state.step} (epoch {state.epoch})")
    items = [case_item(prepared.load(c), cfg.normalisation, cfg.roi, cfg.recipe.bg_min_hu)
             for c in split.train]
    loader = train_loader(items, cfg.roi, cfg.samples_per_case, cfg.cases_per_batch,
                          cfg.workers, cfg.recipe)
    loss_fn = KnownDiceCELoss()
    amp = cfg.amp and device.type == "cuda"
    ckpt = cfg.work_dir / "checkpoint"
    ckpt.mkdir(parents=True, exist_ok=True)
    val_cases = [prepared.load(c) for c in split.validation]
    progress(0.05, f"training on {device} ({_device_name(device)}): {len(split.train)} train, "
             f"{len(split.validation)} validation cases; steps {state.step}->{state.total_steps}")
    net.train()
    t_train = time.perf_counter() - state.seconds
    t_cal = 0.0
    while state.step < state.total_steps:
        for batch in loader:
            step_lr = learning_rate(cfg, state.step, state.total_steps)
            for group in opt.param_groups:
                group["lr"] = step_lr
            x = batch["image"].to(device, non_blocking=True)
            y = batch["label"].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = loss_fn(net(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            state.step += 1
            state.losses.append(round(float(loss.detach()), 4))
            state.seconds = time.perf_counter() - t_train
            if cfg.minutes and state.step == CALIBRATE_FROM:
                _sync(device)
                t_cal = time.perf_counter()
            if cfg.minutes and (state.step == CALIBRATE_TO or (
                    state.step > CALIBRATE_TO and state.step % cfg.log_every == 0)):
                # Re-fit the step count to the time left at the speed seen so far.
                _sync(device)
                rate = (state.step - CALIBRATE_FROM) / (time.perf_counter() - t_cal)
                fit = int(state.step + (cfg.minutes * 60 - state.seconds) * rate)
                state.total_steps = max(state.step, min(cfg.steps, fit))
                if state.step == CALIBRATE_TO:
                    progress(_frac(state), f"{rate:.2f} steps/s: {state.total_steps} steps fit "
                             f"in {cfg.minutes:g} min")
            if state.step % cfg.log_every == 0 or state.step == state.total_steps:
                recent = state.losses[-cfg.log_every:]
                msg = (f"step {state.step}/{state.total_steps} epoch {state.epoch} "
                       f"loss {sum(recent) / len(recent):.4f} lr {step_lr:.2e} "
                       f"{state.seconds:.0f}s")
                if not progress(_frac(state), msg):
                    save_checkpoint(ckpt, net, opt, state)
                    raise Cancelled(msg)
            if cfg.val_every and state.step % cfg.val_every == 0:
                _periodic_validation(net, cfg, val_cases, device, amp, state, progress)
                net.train()
            if state.step % cfg.checkpoint_every == 0:
                save_checkpoint(ckpt, net, opt, state)
            if state.step >= state.total_steps:
                break
        else:
            state.epoch += 1
    save_checkpoint(ckpt, net, opt, state)
    selected_step = state.step
    if cfg.select == "best" and state.val_history:
        best = max(state.val_history, key=lambda v: float(v["mean"]))
        load_weights(net, ckpt / BEST)
        selected_step = int(best["step"])
        progress(0.9, f"selected the step-{selected_step} weights (best mean validation Dice)")
    validation = _validate(net, cfg, val_cases, device, amp, scaled(progress, 0.9, 0.97))
    progress(0.97, "validation Dice " + " ".join(f"{k} {v:.3f}"
                                                  for k, v in validation["per_case"].items())
             + f" mean {validation['mean']:.3f}")
    training = _training_record(cfg, prepared, split, state, device,
                                time.perf_counter() - wall_start)
    training["selected_step"] = selected_step
    metrics = {"validation_dice": {**validation, "weights": cfg.select,
                                   "evaluated_on": f"{device} (PyTorch, "
                                   f"{'bf16 autocast' if amp else 'fp32'}), original grid"}}
    card = write_model(net, cfg, training, metrics)
    progress(1.0, f"wrote {card.folder} (mean validation Dice {validation['mean']:.3f})")
    return card


def _validate(net: torch.nn.Module, cfg: TrainConfig, cases: list[PreparedCase],
              device: torch.device, amp: bool, progress: Progress) -> dict[str, Any]:
    """:func:`~.evaluate.validate` with the inference settings the card will record."""
    card = ModelCard(cfg.model_id, cfg.version, cfg.architecture(), cfg.spacing, cfg.roi, [],
                     normalisation=cfg.normalisation, overlap=cfg.overlap,
                     blend="constant" if cfg.blend == "constant" else "gaussian",
                     threshold=cfg.threshold)
    return validate(net, card, cases, device, amp, progress)


def _periodic_validation(net: torch.nn.Module, cfg: TrainConfig, cases: list[PreparedCase],
                         device: torch.device, amp: bool, state: TrainState,
                         progress: Progress) -> None:
    """Score the current weights; keep them as ``best.safetensors`` when the mean is best."""
    result = _validate(net, cfg, cases, device, amp, no_progress)
    best = max((float(v["mean"]) for v in state.val_history), default=-1.0)
    state.val_history.append({"step": state.step, "mean": result["mean"],
                              "per_case": result["per_case"]})
    if float(result["mean"]) > best:
        save_weights(net, cfg.work_dir / "checkpoint" / BEST)
    progress(_frac(state), f"validation at step {state.step}: mean Dice {result['mean']:.3f} ("
             + " ".join(f"{k} {v:.2f}" for k, v in result["per_case"].items()) + ")")


def _frac(state: TrainState) -> float:
    return 0.05 + 0.85 * state.step / max(state.total_steps, 1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def _training_record(cfg: TrainConfig, prepared: PreparedSet, split: Split, state: TrainState,
                     device: torch.device, wall: float) -> dict[str, Any]:
    steps_per_epoch = max(len(split.train) // cfg.cases_per_batch, 1)
    sampling, augmentation = describe(cfg.recipe)
    return {
        "command": cfg.command,
        "data": {"sha256": prepared.data_sha256, "source": prepared.source,
                 "prepared_by": prepared.command,
                 "cases": len(prepared.cases),
                 "sha256_rule": "sha256 of '<case>/<file> <sha256 of file>' lines, sorted cases, "
                                "files CT_image.nii.gz then CT_mask.nii.gz",
                 "licence": "IBSI soft-tissue sarcoma set, CC BY 3.0"},
        "split": split.to_json(),
        "steps": state.step,
        "epochs": round(state.step / steps_per_epoch, 1),
        "steps_per_epoch": steps_per_epoch,
        "batch": {"cases": cfg.cases_per_batch, "patches_per_case": cfg.samples_per_case,
                  "sampling": sampling},
        "augmentation": augmentation,
        "recipe": cfg.recipe.to_json(),
        "loss": "monai.losses.DiceCELoss(to_onehot_y=True, softmax=True) over the voxels not "
                "ignored (masked_loss.KnownDiceCELoss)",
        "optimizer": f"AdamW lr={cfg.lr} weight_decay={cfg.weight_decay}, "
                     f"warm-up {cfg.warmup_steps} steps, poly(0.9) decay",
        "precision": "bf16 autocast" if cfg.amp and device.type == "cuda" else "fp32",
        "seed": cfg.seed,
        "device": _device_name(device),
        "train_seconds": round(state.seconds, 1),
        "wall_seconds": round(wall, 1),
        "final_loss": round(sum(state.losses[-50:]) / max(len(state.losses[-50:]), 1), 4),
        "pad_value_normalised": cfg.normalisation.pad_value,
        "software": {"torch": torch.__version__, "monai": monai.__version__,
                     "python": platform.python_version()},
        "time_budget_minutes": cfg.minutes or None,
        "lr_schedule_total_steps": state.total_steps,
        "selection": cfg.select,
        "validation_history": [{"step": v["step"], "mean": v["mean"]}
                               for v in state.val_history],
        **({"note": cfg.extra} if cfg.extra else {}),
    }

