"""Training the promptable model with simulated users: ``medseg train-prompt``.

Each step cuts a batch of crops on the device (:mod:`.prompt_sampler`), gives each sample a first
prompt, lets the network in its current state take 0-4 corrective rounds with the simulated user
(:mod:`.simulated_user`), and trains on the last round: Dice + cross-entropy (MONAI
``DiceCELoss``) of the mask, AdamW with a linear warm-up and polynomial decay, bfloat16 autocast
on a GPU. The network is a MONAI ``UNet`` over the eight input channels of
:mod:`medseg_gui.inference.prompt_encoding`.

Runs are resumable: a checkpoint (weights, optimizer, step, the split and the configuration;
:mod:`.checkpoint`, no pickles) is written every ``checkpoint_every`` steps and when the time
budget of this call (``minutes``) runs out, and ``resume`` continues from it with the same
learning-rate schedule. ``steps`` fixes the schedule's length, or, with ``budget_minutes``, the
first call times steps 20-80 and fits the schedule to that many minutes of training in all
(across resumed calls), capped at ``steps``. When the schedule is done the model folder
is written (weights, ONNX checked against PyTorch, card); :func:`transfer_bundle` writes the
weights rounded to float16 plus the run's record, small enough to bring back from a GPU machine,
and :func:`assemble` turns such a bundle into the model folder elsewhere.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medseg_gui.core.atomic import write_bytes
from medseg_gui.core.progress import Cancelled, Progress, no_progress
from medseg_gui.core.segmentation import MORPHOLOGICALLY_ABNORMAL_STRUCTURE, NEOPLASM
from medseg_gui.inference.export import write_model_folder
from medseg_gui.inference.model_card import LabelInfo, ModelCard, Normalisation
from medseg_gui.inference.network import build_network, load_weights
from medseg_gui.inference.prompt_encoding import CHANNELS, PromptConfig, encode
from medseg_gui.io.errors import LoadError
from medseg_gui.training.checkpoint import TrainState, load_checkpoint, save_checkpoint
from medseg_gui.training.interactive_data import (
    LICENCES,
    InteractiveSet,
    open_interactive,
    open_validation,
)
from medseg_gui.training.prompt_sampler import GROUP_ODDS, PatchSampler
from medseg_gui.training.simulated_user import (
    MODE_ODDS,
    MODES,
    ROUND_ODDS,
    correct,
    initial_prompts,
    rounds,
)

LESION = LabelInfo(1, "Lesion", (250, 170, 40), MORPHOLOGICALLY_ABNORMAL_STRUCTURE, NEOPLASM)
TRANSFER = "transfer"


@dataclass
class PromptTrainConfig:
    """Every knob of ``medseg train-prompt``; stored in checkpoints and in the card."""

    data: str
    out: str
    work: str
    model_id: str = "prompt-unet"
    version: str = "1.0.0"
    channels: tuple[int, ...] = (24, 48, 96, 192, 320)
    res_units: int = 2
    prompt: PromptConfig = field(default_factory=PromptConfig)
    steps: int = 12000
    minutes: float = 0.0
    budget_minutes: float = 0.0
    batch: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-5
    warmup_steps: int = 200
    seed: int = 0
    checkpoint_every: int = 500
    schedule_file: str = ""
    log_every: int = 50
    resume: bool = False
    device: str = "auto"
    amp: bool = True
    export: bool = True
    command: str = ""
    odds: dict[str, float] | None = None  # per group; None: prompt_sampler.GROUP_ODDS

    def architecture(self) -> dict[str, Any]:
        return {"name": "UNet", "params": {
            "spatial_dims": 3, "in_channels": len(CHANNELS), "out_channels": 2,
            "channels": list(self.channels), "strides": [2] * (len(self.channels) - 1),
            "num_res_units": self.res_units, "norm": "instance"}}

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["prompt"] = self.prompt.to_json()
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


CALIBRATE_FROM, CALIBRATE_TO = 20, 80  # steps timed to fit a budget


def learning_rate(cfg: PromptTrainConfig, step: int, total: int) -> float:
    """Linear warm-up, then ``(1 - t)^0.9`` decay to zero at step ``total``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(total - cfg.warmup_steps, 1)
    return float(cfg.lr * max(1.0 - t, 0.0) ** 0.9)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    return f"CPU {platform.machine()}, {torch.get_num_threads()} threads"


def interaction_step(net: nn.Module, hu: torch.Tensor, label: torch.Tensor, cfg: PromptConfig,
                     gen: torch.Generator, amp: bool, n_rounds: int) -> torch.Tensor:
    """One simulated interaction on a batch; returns the input of its last round."""
    batch, _mode = initial_prompts(label, gen)
    x = encode(hu, batch.prior, batch.prompts, cfg)
    for _ in range(n_rounds):
        with torch.no_grad(), torch.autocast(hu.device.type, dtype=torch.bfloat16, enabled=amp):
            logits = net(x).float()
        pred = logits.argmax(dim=1).bool()
        correct(batch, label, pred, gen)
        x = encode(hu, batch.prior, batch.prompts, cfg)
    return x


class PhaseTimes:
    """Seconds per phase of the training steps it is given to (device-synchronised, so only
    for a few steps: it is how the calibration steps report where a step goes)."""

    PHASES = ("crops", "simulated user", "update")

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(self.PHASES, 0.0)
        self.steps = 0
        self._t = 0.0

    def mark(self, device: torch.device, phase: str | None = None) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        now = time.perf_counter()
        if phase is not None:
            self.seconds[phase] += now - self._t
        self._t = now

    def summary(self) -> str:
        total = sum(self.seconds.values()) or 1.0
        return ", ".join(f"{k} {1000 * v / max(self.steps, 1):.0f} ms ({100 * v / total:.0f} %)"
                         for k, v in self.seconds.items())


def train_step(net: nn.Module, opt: torch.optim.Optimizer, sampler: PatchSampler,
               cfg: PromptConfig, batch: int, gen: torch.Generator, amp: bool,
               loss_fn: Any, times: PhaseTimes | None = None) -> float:
    """One optimizer step on a simulated interaction of ``batch`` fresh crops; the loss.
    ``times`` (optional) collects where the step's time went."""
    dev = sampler.device
    if times is not None:
        times.mark(dev)
    hu, label = sampler.sample(batch, gen)
    if times is not None:
        times.mark(dev, "crops")
    x = interaction_step(net, hu, label, cfg, gen, amp, rounds(gen, hu.device))
    if times is not None:
        times.mark(dev, "simulated user")
    with torch.autocast(hu.device.type, dtype=torch.bfloat16, enabled=amp):
        logits = net(x)
    loss = loss_fn(logits.float(), label[:, None].float())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if times is not None:
        times.mark(dev, "update")
        times.steps += 1
    return float(loss.detach())


def train_prompt(cfg: PromptTrainConfig, progress: Progress = no_progress) -> ModelCard | None:
    """Run (or resume) ``cfg``; returns the model's card once the schedule is done, ``None``
    when this call's time budget ran out first (the checkpoint then holds the run)."""
    from monai.losses.dice import DiceCELoss
    from monai.utils.misc import set_determinism

    wall = time.perf_counter()
    device = _device(cfg.device)
    data = open_interactive(cfg.data)
    train_cases = data.select("train")
    if not train_cases:
        raise LoadError(Path(cfg.data), "the prepared set holds no training cases")
    set_determinism(cfg.seed)
    # MONAI's set_determinism also restricts cuDNN to deterministic kernels; the crops and
    # prompts are seeded, the convolutions may take the fastest kernels.
    torch.backends.cudnn.deterministic = False
    torch.backends.cudnn.benchmark = device.type == "cuda"
    net = build_network(cfg.architecture()).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    work = Path(cfg.work)
    ckpt = work / "checkpoint"
    split = {s: sorted(c.case_id for c in data.select(s)) for s in ("train", "validation",
                                                                     "test")}
    state = TrainState(split=split, config=cfg.to_json(), total_steps=cfg.steps)
    if cfg.resume and not (ckpt / "state.json").is_file():
        progress(0.02, f"no checkpoint in {ckpt}: starting afresh")
    if cfg.resume and (ckpt / "state.json").is_file():
        state = load_checkpoint(ckpt, net, opt)
        if state.split != split:
            raise LoadError(ckpt, "--resume: the checkpoint was trained on another split")
        if not cfg.budget_minutes:  # with a budget the first call fitted the schedule
            state.total_steps = max(cfg.steps, state.step)
        progress(0.02, f"resumed at step {state.step} of {state.total_steps}")
    progress(0.02, f"loading {len(train_cases)} training cases")
    sampler = PatchSampler([data.load(c.case_id) for c in train_cases], cfg.prompt, device,
                           odds=cfg.odds or GROUP_ODDS, seed=cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed * 1_000_003 + state.step)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    amp = cfg.amp and device.type == "cuda"
    progress(0.03, f"training on {device} ({_device_name(device)}): {len(sampler.objects)} "
             f"objects in {len(train_cases)} CTs; steps {state.step}->{state.total_steps}")
    t_run = time.perf_counter()
    seconds_before = state.seconds
    net.train()
    t_cal = 0.0
    times = PhaseTimes()
    while state.step < state.total_steps:
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, state.step, state.total_steps)
        timed = CALIBRATE_FROM <= state.step < CALIBRATE_TO and seconds_before == 0
        loss = train_step(net, opt, sampler, cfg.prompt, cfg.batch, gen, amp, loss_fn,
                          times if timed else None)
        state.step += 1
        state.losses.append(round(loss, 4))
        state.seconds = seconds_before + time.perf_counter() - t_run
        if cfg.budget_minutes and state.step in (CALIBRATE_FROM, CALIBRATE_TO) and \
                seconds_before == 0:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if state.step == CALIBRATE_FROM:
                t_cal = time.perf_counter()
            else:
                rate = (CALIBRATE_TO - CALIBRATE_FROM) / (time.perf_counter() - t_cal)
                fit = int(state.step + (cfg.budget_minutes * 60 - state.seconds) * rate)
                state.total_steps = shared_schedule(
                    cfg.schedule_file, max(state.step + 1, min(cfg.steps, fit)))
                progress(0.05, f"{rate:.2f} steps/s ({times.summary()}): {state.total_steps} "
                         f"steps fit in {cfg.budget_minutes:g} min")
        if state.step % cfg.log_every == 0 or state.step == state.total_steps:
            recent = state.losses[-cfg.log_every:]
            msg = (f"step {state.step}/{state.total_steps} loss {sum(recent) / len(recent):.4f} "
                   f"lr {learning_rate(cfg, state.step, state.total_steps):.2e} "
                   f"{state.seconds:.0f}s")
            if not progress(0.05 + 0.9 * state.step / state.total_steps, msg):
                save_checkpoint(ckpt, net, opt, state)
                raise Cancelled(msg)
        out_of_time = bool(cfg.minutes) and time.perf_counter() - wall > cfg.minutes * 60
        if state.step % cfg.checkpoint_every == 0 or out_of_time:
            save_checkpoint(ckpt, net, opt, state)
        if out_of_time:
            break
    save_checkpoint(ckpt, net, opt, state)
    record = _record(cfg, data, state, device, amp, time.perf_counter() - wall,
                     sampler.group_odds())
    transfer_bundle(net, record, work / TRANSFER)
    if state.step < state.total_steps:
        progress(1.0, f"stopped at step {state.step} of {state.total_steps} (time budget); "
                 "resume to continue")
        return None
    if not cfg.export:
        return None
    card = write_prompt_model(net, cfg, record, Path(cfg.out))
    progress(1.0, f"wrote {card.folder}")
    return card


def shared_schedule(path: str, steps: int) -> int:
    """``steps``, or the schedule length another run wrote to ``path`` first (runs compared
    with each other, side by side on one GPU, then train exactly as many steps)."""
    if not path:
        return steps
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        for _ in range(50):  # the first run may still be writing it
            text = Path(path).read_text(encoding="utf-8")
            if text.endswith("\n"):
                return int(text)
            time.sleep(0.1)
        raise LoadError(Path(path), "the shared schedule file stayed empty") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(f"{steps}\n")
    return steps


def _record(cfg: PromptTrainConfig, data: InteractiveSet, state: TrainState,
            device: torch.device, amp: bool, wall: float,
            odds: dict[str, float]) -> dict[str, Any]:
    import monai

    counts = data.summary()
    return {
        "command": cfg.command,
        "data": {"sha256": data.data_sha256, "prepared_by": data.command,
                 "sets": counts, "sha256_rule": "see objects.json of the prepared set",
                 "licences": "; ".join(LICENCES[c] for c in sorted(
                     {c.collection for c in data.select("train")}) if c in LICENCES)
                 + " (ibsi_lung, CC BY-NC, is not trained on)"},
        "split": state.split,
        "split_rule": "sarcoma: the automatic model's rule (sha256 'medseg-split-v1', 0.2, "
                      "STS_008 forced): its held-out cases are test cases; OpenKBP: the same "
                      "rule, held-out patients split again by sha256 'medseg-interactive-val' "
                      "< 1/3 into validation (choosing) and test (reporting); TotalSegmentator "
                      "3 mm example trained on, DICOM example test; synthetic lesions: "
                      "their host CT's split",
        "steps": state.step, "total_steps": state.total_steps, "batch": cfg.batch,
        "sampling": {"group_odds": odds, "crops": "half click-centred at zoom 1, half "
                     "fitted to the object; per-axis zoom jitter 0.9-1.1, in-plane rotation "
                     "+-15 deg (p 0.5), flips on every axis"},
        "simulated_user": {"first_prompt": dict(zip(MODES, MODE_ODDS, strict=True)),
                           "corrective_rounds_odds": list(ROUND_ODDS),
                           "click": "centre (erosion depth maximum) of the deeper of the "
                                    "missed / leaked regions; negative scribble through the "
                                    "leak with odds 0.15"},
        "loss": "monai.losses.DiceCELoss(to_onehot_y=True, softmax=True) on the last round",
        "optimizer": f"AdamW lr={cfg.lr} weight_decay={cfg.weight_decay}, warm-up "
                     f"{cfg.warmup_steps} steps, poly(0.9) decay over {state.total_steps} steps",
        "time_budget_minutes": cfg.budget_minutes or None,
        "precision": "bf16 autocast" if amp else "fp32",
        "seed": cfg.seed, "device": _device_name(device),
        "train_seconds": round(state.seconds, 1), "last_call_wall_seconds": round(wall, 1),
        "final_loss": round(sum(state.losses[-200:]) / max(len(state.losses[-200:]), 1), 4),
        "losses_every_100": state.losses[99::100],
        "software": {"torch": torch.__version__, "monai": monai.__version__,
                     "python": platform.python_version()},
        "config": cfg.to_json(),
    }


def transfer_bundle(net: nn.Module, record: dict[str, Any], folder: Path,
                    part_bytes: int = 12 << 20) -> list[Path]:
    """The weights rounded to float16, in parts of at most ``part_bytes``, and the record.

    What comes back from a GPU machine whose files are limited to 16 MiB each."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("weights.*.safetensors"):
        old.unlink()
    parts: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, t in net.state_dict().items():
        half = t.detach().to("cpu", torch.float16).contiguous()
        if size and size + half.numel() * 2 > part_bytes:
            parts.append({})
            size = 0
        parts[-1][name] = half
        size += half.numel() * 2
    paths = []
    for n, part in enumerate(parts):
        path = folder / f"weights.{n}.safetensors"
        save_file(part, str(path))
        paths.append(path)
    write_bytes(folder / "record.json", json.dumps(record, indent=1).encode("utf-8"))
    return [*paths, folder / "record.json"]


def assemble(bundle: str | Path, out: str | Path, *, model_id: str | None = None,
             version: str | None = None, validation_data: str | Path | None = None,
             progress: Progress = no_progress) -> ModelCard:
    """The model folder from a :func:`transfer_bundle` (weights widened back to float32).

    With ``validation_data`` (a prepared set holding validation cases) the card also gets
    ``metrics["validation_dice"]``: Dice after 3 simulated clicks with ONNX Runtime on the CPU,
    the figure runs are chosen on and the fine-tuning gate compares."""
    from safetensors.torch import load_file

    folder = Path(bundle)
    try:
        record = json.loads((folder / "record.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LoadError(folder, f"not a transfer bundle: {exc}") from exc
    conf = dict(record["config"])
    conf["prompt"] = PromptConfig.from_json(conf["prompt"])
    conf["channels"] = tuple(conf["channels"])
    cfg = PromptTrainConfig(**conf)
    cfg.model_id = model_id or cfg.model_id
    cfg.version = version or cfg.version
    state: dict[str, torch.Tensor] = {}
    for part in sorted(folder.glob("weights.*.safetensors")):
        state.update(load_file(str(part)))
    net = build_network(cfg.architecture())
    net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    record["weights"] = "trained in float32 (bf16 autocast), rounded to float16 for the " \
                        "transfer from the GPU machine, stored as float16 (exact)"
    validation = None if validation_data is None else open_validation(validation_data)
    card = write_prompt_model(net, cfg, record, Path(out))
    if validation is not None:
        card.metrics["validation_dice"] = validate_onnx(card, validation, progress)
        card.save()
    return card


def validate_onnx(card: ModelCard, data: InteractiveSet,
                  progress: Progress = no_progress) -> dict[str, Any]:
    """:func:`~.interactive_eval.validate_prepared` of ``card`` with ONNX Runtime on the CPU
    over the validation cases of a prepared set, with where it was measured."""
    from medseg_gui.inference.onnx_backend import OnnxRuntimeBackend
    from medseg_gui.training.interactive_eval import validate_prepared

    cases = data.select("validation")
    backend = OnnxRuntimeBackend(card, device="cpu")
    try:
        result = validate_prepared([data.load(c.case_id) for c in cases], card, backend,
                                   progress=progress)
    finally:
        backend.close()
    return {**result, "weights": "last", "backend": "onnxruntime cpu",
            "evaluated_on": f"{data.folder} (data sha256 {data.data_sha256[:12]}; "
                            f"{len(cases)} validation cases, prepared grid)"}


def write_prompt_model(net: nn.Module, cfg: PromptTrainConfig, record: dict[str, Any],
                       out: Path, metrics: dict[str, Any] | None = None) -> ModelCard:
    """Weights, ONNX (dynamic crops, checked against PyTorch) and the card into ``out``."""
    wide = cfg.prompt.windows[0]
    card = ModelCard(
        model_id=cfg.model_id, version=cfg.version, architecture=cfg.architecture(),
        spacing=cfg.prompt.spacing, roi_size=cfg.prompt.patch, labels=[LESION],
        normalisation=Normalisation(wide[0], wide[1], (wide[0] + wide[1]) / 2,
                                    (wide[1] - wide[0]) / 2),
        threshold=cfg.prompt.threshold, onnx_output="object_probability",
        training=dict(record), metrics=dict(metrics or {}), prompt=cfg.prompt.to_json())
    return write_model_folder(card, net, folder=out)


def load_prompt_net(card: ModelCard) -> nn.Module:
    """The card's network with its weights (for fine-tuning and evaluation in PyTorch)."""
    card.verify(weights=True)
    return load_weights(build_network(card.architecture), card.weights_path)
