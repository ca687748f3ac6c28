"""Fine-tuning on the CPU with tiny synthetic cases: the card, the mean-teacher term, promotion,
the command as a job (progress and cancel), and torchrun with two gloo processes."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.jobs import JobStatus
from medseg_gui.inference.model_card import load_card
from medseg_gui.inference.network import build_network
from medseg_gui.inference.registry import ModelRegistry, PromotionRefused
from medseg_gui.training.config import TrainConfig
from medseg_gui.training.consistency import rampup, strong_view
from medseg_gui.training.data import PREPARED_NAME, prepare_arrays, save_case
from medseg_gui.training.export import TUMOUR, write_model
from medseg_gui.training.finetune import FinetuneConfig, finetune, validation_cases
from medseg_gui.training.jobs import python_job
from medseg_gui.training.sampling import Recipe

ROOT = Path(__file__).resolve().parent.parent
ROI = (8, 32, 32)


def _case(case_id: str, seed: int, labelled: bool = True) -> object:
    rng = np.random.default_rng(seed)
    geom = Geometry((12, 40, 40), (1.0, 1.0, 3.0), (0.0, 0.0, 0.0))
    k, j, i = np.ogrid[:12, :40, :40]
    ball = ((k - 6) * 3.0) ** 2 + (j - 20.0) ** 2 + (i - 18.0) ** 2 < 10.0**2
    image = np.where(ball, 110.0, 30.0) + rng.normal(0, 15, geom.shape)
    mask = ball if labelled else np.zeros(geom.shape, bool)
    return prepare_arrays(case_id, image, mask.astype(np.uint8), geom, (1.0, 1.0, 3.0),
                          (-200.0, 300.0))


def _prepared(folder: Path, ids: list[str], labelled: bool = True) -> Path:
    import json

    folder.mkdir(parents=True)
    for n, cid in enumerate(ids):
        save_case(folder, _case(cid, n, labelled))  # type: ignore[arg-type]
    (folder / PREPARED_NAME).write_text(json.dumps({
        "spacing": [1.0, 1.0, 3.0], "clip": [-200.0, 300.0], "data_sha256": "synthetic",
        "source": "synthetic", "cases": ids}), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny base model ("shipped") whose card claims Dice 0.99 on CASE_V, and the data."""
    root = tmp_path_factory.mktemp("ft")
    data = _prepared(root / "data", ["CASE_A", "CASE_V"])
    unl = _prepared(root / "unlabeled", ["UNL_1"], labelled=False)
    cfg = TrainConfig(data=str(data), out=str(root / "engines" / "tiny" / "1.0.0"),
                      model_id="tiny", version="1.0.0", roi=ROI, channels=(4, 8))
    torch.manual_seed(0)
    net = build_network(cfg.architecture())
    val = {"per_case": {"CASE_V": 0.99}, "mean": 0.99}
    write_model(net, cfg, {"split": {"train": ["CASE_A"], "validation": ["CASE_V"]}},
                {"validation_dice": val})
    return {"root": root, "data": data, "unl": unl, "base": root / "engines" / "tiny" / "1.0.0"}


def _cfg(s: dict[str, Path], out: str, **kw: object) -> FinetuneConfig:
    return FinetuneConfig(base=str(s["base"]), out=str(s["root"] / "models" / "tiny" / out),
                          labelled=(str(s["data"]),), steps=3, workers=0, device="cpu",
                          log_every=1, rampup_steps=2, **kw)  # type: ignore[arg-type]


def test_finetune_writes_a_card_validated_on_the_base_cases(setup: dict[str, Path]) -> None:
    messages: list[str] = []

    def progress(fraction: float, message: str) -> bool:
        messages.append(message)
        return True

    card = finetune(_cfg(setup, "1.0.1"), progress)
    assert card is not None
    again = load_card(card.folder, verify=True)
    base = load_card(setup["base"])
    assert sorted(again.metrics["validation_dice"]["per_case"]) == validation_cases(base)
    assert again.training["fine_tuned_from"] == "tiny:1.0.0"
    assert again.training["labelled_cases"] == ["CASE_A"]  # the held-out case is never trained on
    assert again.training["consistency"]["used"] is False
    assert again.architecture == base.architecture and again.version == "1.0.1"
    assert any(m.startswith("step 3/3") for m in messages)


def test_finetune_draws_patches_with_the_base_recipe(setup: dict[str, Path]) -> None:
    """A base trained with hard negatives and zoom is fine-tuned with them, and says so; its
    label (name, colour, codes) carries over."""
    cfg = TrainConfig(data=str(setup["data"]), out=str(setup["root"] / "engines" / "hz" / "1.0.0"),
                      model_id="hz", version="1.0.0", roi=ROI, channels=(4, 8), neg_ratio=2.0,
                      bg_min_hu=-100.0, zoom=(0.8, 1.25))
    torch.manual_seed(0)
    val = {"per_case": {"CASE_V": 0.99}, "mean": 0.99}
    sarcoma = dataclasses.replace(TUMOUR, name="Sarcoma", color=(200, 40, 200))
    write_model(build_network(cfg.architecture()), cfg,
                {"split": {"train": ["CASE_A"], "validation": ["CASE_V"]},
                 "recipe": cfg.recipe.to_json()}, {"validation_dice": val}, labels=[sarcoma])
    card = finetune(FinetuneConfig(base=cfg.out, out=str(setup["root"] / "models" / "hz" / "1.0.1"),
                                   labelled=(str(setup["data"]),), steps=2, workers=0,
                                   device="cpu"))
    assert card is not None
    assert Recipe.of_card(card.training) == Recipe(2.0, -100.0, (0.8, 1.25))
    assert card.training["recipe"]["from"] == "hz:1.0.0"
    assert "neg=2, background centres only where HU > -100" in card.training["batch"]["sampling"]
    assert "isotropic 0.8-1.25" in card.training["augmentation"]
    assert load_card(card.folder).labels == [sarcoma]  # the base's label, not a default one
    assert Recipe.of_card({"command": "an older card"}) == Recipe()  # trained with the defaults


def test_mean_teacher_term_runs_and_changes_the_loss(setup: dict[str, Path]) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(2, 1, *ROI)
    assert not torch.equal(strong_view(x, gen), x)
    assert rampup(0, 10) < 0.01 and rampup(10, 10) == 1.0
    semi = finetune(_cfg(setup, "1.0.2-semi", unlabeled=(str(setup["unl"]),)))
    sup = load_card(setup["root"] / "models" / "tiny" / "1.0.1")
    assert semi is not None
    cons = semi.training["consistency"]
    assert cons["used"] is True and cons["final"] > 0
    assert semi.training["unlabeled_cases"] == ["UNL_1"]
    assert semi.training["final_loss"] != sup.training["final_loss"]


def test_registry_refuses_a_worse_fine_tune(setup: dict[str, Path]) -> None:
    reg = ModelRegistry(shipped=setup["root"] / "engines", user=setup["root"] / "models")
    worse = reg.find("tiny:1.0.1")
    assert worse.validation_dice is not None and worse.validation_dice < 0.99
    with pytest.raises(PromotionRefused, match="worse"):
        reg.promote("tiny:1.0.1")
    assert reg.active("tiny") is not None and reg.active("tiny").version == "1.0.0"  # type: ignore[union-attr]


def _args(s: dict[str, Path], out: str, steps: int) -> list[str]:
    return ["finetune", "--from", str(s["base"]), "--data", str(s["data"]), "--steps", str(steps),
            "--device", "cpu", "--workers", "0", "--log-every", "1",
            "--out", str(s["root"] / "models" / "tiny" / out), "--work", str(s["root"] / "w")]


def test_command_runs_as_a_job_with_progress(setup: dict[str, Path]) -> None:
    fractions: list[float] = []
    job = python_job("medseg_gui.training", *_args(setup, "1.0.3", 2), cwd=ROOT,
                     on_update=lambda st: fractions.append(st.fraction))
    assert job.start().wait(300) is JobStatus.DONE, job.state().error
    assert fractions and max(fractions) == 1.0
    assert load_card(setup["root"] / "models" / "tiny" / "1.0.3").training["steps"] == 2


def test_command_job_can_be_cancelled(setup: dict[str, Path]) -> None:
    job = python_job("medseg_gui.training", *_args(setup, "1.0.4", 100000), cwd=ROOT).start()
    deadline = time.monotonic() + 120
    while "step" not in job.state().message and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "step" in job.state().message, job.state()
    assert job.cancel(grace_s=5).status is JobStatus.CANCELLED
    assert not (setup["root"] / "models" / "tiny" / "1.0.4" / "model.json").exists()


def test_torchrun_two_gloo_processes(setup: dict[str, Path]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "medseg_gui.training", *_args(setup, "1.0.5-ddp", 2)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    card = load_card(setup["root"] / "models" / "tiny" / "1.0.5-ddp")
    assert card.training["world_size"] == 2
    assert done.stdout.count("wrote ") == 2  # rank 0's progress line and its summary, once each
