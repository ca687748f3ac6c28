"""Fine-tuning the promptable model on the site's corrected cases, with simulated users.

``medseg finetune --from prompt-unet:VERSION --queue`` lands here (the base card is
promptable): every labelled segment of each queued correction becomes an object
(:func:`prepare_queue_objects`), the network starts from the base weights and trains with the
same simulated users as the original run (:func:`~.prompt_trainer.train_step`), at a lower
learning rate. Validation scores base and candidate in the same run with the simulated user of
:mod:`.interactive_eval` (Dice after three clicks) on the base's held-out objects
(``--validation-data``: a prepared set holding them, made by ``medseg train-prompt --prepare
... --splits validation``), so the registry's promotion gate compares like with like and
refuses a version that got worse.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg_gui.core.progress import Cancelled, Progress, check, no_progress
from medseg_gui.inference.model_card import ModelCard, load_card
from medseg_gui.inference.network import TumourProbability
from medseg_gui.inference.prompt_encoding import PromptConfig
from medseg_gui.inference.torch_backend import TorchBackend
from medseg_gui.io.errors import LoadError
from medseg_gui.training.interactive_data import (
    InteractiveSet,
    LoadedCase,
    SourceCase,
    open_interactive,
    open_validation,
    prepare_sources,
)
from medseg_gui.training.interactive_eval import validate_prepared
from medseg_gui.training.prompt_sampler import PatchSampler
from medseg_gui.training.prompt_trainer import (
    PromptTrainConfig,
    _device,
    _device_name,
    load_prompt_net,
    train_step,
    write_prompt_model,
)
from medseg_gui.training.queue import TrainingQueue


@dataclass
class PromptFinetuneConfig:
    """What a promptable fine-tune is asked to do (``labelled``: prepared object sets)."""

    base: str
    out: str
    labelled: tuple[str, ...]
    validation_data: str
    version: str = ""
    steps: int = 300
    lr: float = 1e-4
    warmup_steps: int = 20
    batch: int = 4
    seed: int = 12345
    device: str = "auto"
    amp: bool = True
    log_every: int = 25
    command: str = ""


def prepare_queue_objects(queue: TrainingQueue, out: str | Path, card: ModelCard,
                          progress: Progress = no_progress, *, any_status: bool = False
                          ) -> InteractiveSet:
    """Every queued or used correction as a case whose objects are its completed segments
    (all its segments with ``any_status``); what is left out is told through ``progress``."""
    from medseg_gui.io.imagefile import read_image
    from medseg_gui.training.finetune_data import select_queue

    cases, skipped = select_queue(queue, any_status)
    for line in skipped:
        check(progress, 0.0, line)
    if not cases:
        raise LoadError(queue.root, "the training queue holds no corrected cases with completed "
                        "segments")
    sources = []
    for case in cases:
        item = case.item
        labels = case.labels or tuple(int(v) for v in np.unique(read_image(item.mask_file).array)
                                      if v > 0)
        sources.append(SourceCase(item.case_id, "queue", "train", item.image_file,
                                  tuple((f"segment{v}", "lesion", item.mask_file, v)
                                        for v in labels)))
    spacing = PromptConfig.from_json(card.prompt).spacing
    return prepare_sources(sources, out, spacing, progress=progress,
                           command=f"medseg finetune: training queue {queue.root}")


def _validation(folder: str) -> list[LoadedCase]:
    data = open_validation(folder)
    return [data.load(c.case_id) for c in data.select("validation")]


def finetune_prompt(cfg: PromptFinetuneConfig, progress: Progress = no_progress) -> ModelCard:
    """Fine-tune ``cfg.base`` into ``cfg.out`` (see the module docstring)."""
    from monai.losses.dice import DiceCELoss

    wall = time.perf_counter()
    device = _device(cfg.device)
    base = load_card(cfg.base, verify=True)
    if not base.promptable:
        raise LoadError(base.folder, f"{base.ref} is not a promptable model")
    prompt = PromptConfig.from_json(base.prompt)
    cases: list[LoadedCase] = []
    for folder in cfg.labelled:
        data = open_interactive(folder)
        cases += [data.load(c.case_id) for c in data.select("train")]
    if not any(c.masks for c in cases):
        raise LoadError(Path(cfg.labelled[0] if cfg.labelled else "."), "no labelled objects")
    validation = _validation(cfg.validation_data)
    torch.manual_seed(cfg.seed)
    net = load_prompt_net(base).to(device)
    sampler = PatchSampler(cases, prompt, device, seed=cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-5)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    amp = cfg.amp and device.type == "cuda"
    progress(0.02, f"fine-tuning {base.ref} on {device} ({_device_name(device)}): "
             f"{len(sampler.objects)} objects in {len(cases)} corrected cases, {cfg.steps} steps")
    losses: list[float] = []
    net.train()
    t0 = time.perf_counter()
    for step in range(cfg.steps):
        lr = cfg.lr * min((step + 1) / max(cfg.warmup_steps, 1),
                          max(1.0 - step / cfg.steps, 0.0) ** 0.9)
        for g in opt.param_groups:
            g["lr"] = lr
        losses.append(train_step(net, opt, sampler, prompt, cfg.batch, gen, amp, loss_fn))
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            recent = losses[-cfg.log_every:]
            msg = (f"step {step + 1}/{cfg.steps} loss {sum(recent) / len(recent):.4f} "
                   f"lr {lr:.2e} {time.perf_counter() - t0:.0f}s")
            if not progress(0.05 + 0.6 * (step + 1) / cfg.steps, msg):
                raise Cancelled(msg)
    seconds = time.perf_counter() - t0
    net.eval()
    progress(0.66, f"validating {base.ref} and the fine-tuned weights on "
             f"{sum(len(c.masks) for c in validation)} held-out objects")
    base_backend = TorchBackend(base, device=str(device))
    base_val = validate_prepared(validation, base, base_backend)
    base_backend.close()
    new_backend = TorchBackend(None, device=str(device), module=TumourProbability(net))
    new_val = validate_prepared(validation, base, new_backend)
    new_backend.close()
    out = Path(cfg.out)
    tc = _config_of(base, out, cfg.version or out.name)
    record = {
        "command": cfg.command, "fine_tuned_from": base.ref,
        "base_weights_sha256": base.weights_sha256,
        "labelled_cases": sorted(c.info.case_id for c in cases),
        "objects": len(sampler.objects),
        "split": {"train": sorted(c.info.case_id for c in cases),
                  "validation": sorted(c.info.case_id for c in validation),
                  "rule": f"the held-out objects of {base.ref} ({cfg.validation_data})"},
        "steps": cfg.steps, "batch": cfg.batch, "seed": cfg.seed,
        "optimizer": f"AdamW lr={cfg.lr}, warm-up {cfg.warmup_steps}, poly(0.9)",
        "simulated_user": base.training.get("simulated_user"),
        "device": _device_name(device), "precision": "bf16 autocast" if amp else "fp32",
        "train_seconds": round(seconds, 1), "wall_seconds": round(time.perf_counter() - wall, 1),
        "final_loss": round(float(np.mean(losses[-50:])), 4),
        "config": {k: v for k, v in asdict(cfg).items()},
        "prompt": base.prompt,
    }
    metrics = {"validation_dice": {**new_val, "evaluated_on": f"{device}, PyTorch, prepared "
                                   "validation objects"},
               "base_validation_dice_same_run": base_val["mean"],
               "base_validation_dice": (base.metrics.get("validation_dice") or {}).get("mean")}
    card = write_prompt_model(net, tc, record, out, metrics=metrics)
    progress(1.0, f"wrote {card.folder}: validation Dice@3 {new_val['mean']} "
             f"({base.ref} in the same run: {base_val['mean']})")
    return card


def _config_of(base: ModelCard, out: Path, version: str) -> PromptTrainConfig:
    """The training configuration that writes a card like ``base``'s under a new version."""
    params: dict[str, Any] = base.architecture.get("params", {})
    return PromptTrainConfig(data="", out=str(out), work="", model_id=base.model_id,
                             version=version, channels=tuple(params.get("channels", ())),
                             res_units=int(params.get("num_res_units", 2)),
                             prompt=PromptConfig.from_json(base.prompt))
