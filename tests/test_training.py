"""Supervised training: the fixed split, a short CPU run end to end, resuming, the shipped model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.resample import resample_array
from medseg_gui.core.volume import Volume
from medseg_gui.inference.model_card import load_card, sha256_file
from medseg_gui.inference.network import TumourProbability, build_network, load_weights
from medseg_gui.io.errors import LoadError
from medseg_gui.io.imagefile import read_image, write_image
from medseg_gui.training.checkpoint import OPTIMIZER, read_state
from medseg_gui.training.config import TrainConfig
from medseg_gui.training.data import (
    data_sha256,
    find_cases,
    prepare_folder,
    split_cases,
)
from medseg_gui.training.evaluate import evaluate_case, onnx_predictor, prepare_nifti_pair
from medseg_gui.training.trainer import train

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "engines" / "sts-tumour-unet" / "1.1.0"  # the default: the newest shipped
TINY = {"roi": (8, 32, 32), "channels": (4, 8), "spacing": (1.0, 1.0, 3.0)}


def test_split_is_a_fixed_function_of_the_case_ids() -> None:
    ids = [f"STS_{n:03d}" for n in range(1, 60)]
    split = split_cases(ids, 0.2, force_validation=["STS_008"])
    assert split == split_cases(list(reversed(ids)), 0.2, force_validation=["STS_008"])
    assert "STS_008" in split.validation and not set(split.train) & set(split.validation)
    assert sorted(split.train + split.validation) == ids
    # Adding cases never moves an existing case between train and validation.
    more = split_cases([*ids, "NEW_1", "NEW_2", "NEW_3"], 0.2, force_validation=["STS_008"])
    assert set(split.validation) <= set(more.validation)
    assert set(split.train) <= set(more.train)
    with pytest.raises(LoadError, match="empty training or validation"):
        split_cases(["A"], 0.2, force_validation=["A"])


def test_resample_matches_simpleitk_linear() -> None:
    rng = np.random.default_rng(3)
    src = Geometry((12, 20, 24), (0.9, 0.8, 3.3), (4.0, -7.0, 11.0))
    arr = rng.normal(size=src.shape).astype(np.float32)
    dst = src.with_spacing((1.0, 1.0, 3.0))
    ours = resample_array(arr, src, dst)
    ref = Volume(arr, src).resample(dst, interpolation="linear").array
    inner = (slice(0, -2), slice(0, -2), slice(0, -2))  # ITK fills outside; we extend the edge
    assert np.abs(ours[inner] - ref[inner]).max() < 1e-4


def _crop_case(src: Path, dst: Path, half: tuple[int, int, int]) -> None:
    """A small box of a real case around the centre of its tumour."""
    image, mask = read_image(src / "CT_image.nii.gz"), read_image(src / "CT_mask.nii.gz")
    k, j, i = (int(np.mean(a)) for a in np.nonzero(mask.array))
    lo = [max(c - h, 0) for c, h in zip((i, j, k), half, strict=True)]
    hi = [min(c + h, n) for c, h, n in zip((i, j, k), half, image.geometry.size_ijk, strict=True)]
    dst.mkdir(parents=True)
    write_image(image.crop(lo, hi), dst / "CT_image.nii.gz")
    write_image(mask.crop(lo, hi), dst / "CT_mask.nii.gz")


@pytest.fixture(scope="module")
def tiny_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Two cropped real cases, trained 3 steps on the CPU; STS_008 is the validation case."""
    root = tmp_path_factory.mktemp("train")
    for case in ("STS_001", "STS_008"):
        _crop_case(shared_data / "ibsi_sts" / "nifti" / case, root / "data" / case, (32, 32, 8))
    cfg = TrainConfig(data=str(root / "data"), out=str(root / "engines" / "tiny" / "0.0.1"),
                      work=str(root / "work"), steps=3, workers=0, log_every=1,
                      checkpoint_every=2, val_fraction=0.0, force_validation=("STS_008",),
                      command="pytest", **TINY)  # type: ignore[arg-type]
    messages: list[str] = []
    card = train(cfg, lambda f, m: messages.append(m) is None)
    return {"cfg": cfg, "card": card, "messages": messages, "root": root}


def test_short_run_writes_a_verified_model(tiny_run: dict[str, object]) -> None:
    cfg = tiny_run["cfg"]
    assert isinstance(cfg, TrainConfig)
    card = load_card(cfg.out)
    card.verify(weights=True)
    assert card.onnx_sha256 == sha256_file(card.onnx_path)
    assert card.roi_size == TINY["roi"] and card.spacing == TINY["spacing"]
    split = card.training["split"]
    assert split["train"] == ["STS_001"] and split["validation"] == ["STS_008"]
    cases = find_cases(cfg.data)
    assert card.training["data"]["sha256"] == data_sha256(cases)
    assert card.training["steps"] == 3 and card.training["seed"] == cfg.seed
    assert 0.0 <= card.metrics["validation_dice"]["per_case"]["STS_008"] <= 1.0
    assert [lb.name for lb in card.labels] == ["Tumour"]
    assert card.labels[0].type.value == "108369006"
    assert any(m.startswith("step 3/3") for m in tiny_run["messages"])  # type: ignore[attr-defined]

    import onnxruntime as ort

    net = load_weights(build_network(card.architecture), card.weights_path).eval()
    x = torch.randn(2, 1, *card.roi_size)  # batch 2: the batch axis is dynamic
    with torch.inference_mode():
        ref = TumourProbability(net)(x).numpy()
    session = ort.InferenceSession(str(card.onnx_path), providers=["CPUExecutionProvider"])
    got = session.run([card.onnx_output], {card.onnx_input: x.numpy()})[0]
    assert got.shape == (2, 1, *card.roi_size)
    assert float(np.abs(got - ref).max()) < 1e-4


def test_resume_continues_the_step_count(tiny_run: dict[str, object]) -> None:
    cfg = tiny_run["cfg"]
    assert isinstance(cfg, TrainConfig)
    ckpt = Path(cfg.work) / "checkpoint"
    assert read_state(ckpt).step == 3
    saved = torch.load(ckpt / OPTIMIZER, weights_only=True)  # no pickles in the checkpoint
    assert saved["state"]
    out = Path(cfg.out).parent / "0.0.2"
    resumed = TrainConfig(**{**cfg.__dict__, "out": str(out), "version": "0.0.2", "steps": 5,
                             "resume": True})
    messages: list[str] = []
    card = train(resumed, lambda f, m: messages.append(m) is None)
    assert messages[0].startswith("resumed at step 3 ")
    assert not any(m.startswith(("step 1/", "step 2/", "step 3/")) for m in messages)
    assert read_state(ckpt).step == 5 and card.training["steps"] == 5
    other = TrainConfig(**{**resumed.__dict__, "force_validation": ("STS_001",)})
    with pytest.raises(LoadError, match="another split"):
        train(other)


def test_prepared_folder_is_reused_and_checked(tiny_run: dict[str, object]) -> None:
    cfg = tiny_run["cfg"]
    assert isinstance(cfg, TrainConfig)
    prepared = Path(cfg.work) / "prepared"
    before = (prepared / "prepared.json").stat().st_mtime_ns
    again = prepare_folder(cfg.data, prepared, cfg.spacing, (-200.0, 300.0))
    assert (prepared / "prepared.json").stat().st_mtime_ns == before
    assert again.cases == ["STS_001", "STS_008"]
    wrong = TrainConfig(**{**cfg.__dict__, "data": str(prepared), "spacing": (2.0, 2.0, 3.0)})
    with pytest.raises(LoadError, match="prepare it again"):
        train(wrong)


def test_cli_reports_bad_data_in_one_line(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "medseg_gui.training", "train", "--data", str(tmp_path / "no"),
         "--out", str(tmp_path / "m" / "1")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "training data folder not found" in res.stderr


def test_the_default_model_is_the_newest_shipped() -> None:
    from medseg_gui.inference.models import resolve_model

    assert resolve_model().folder == SHIPPED
    load_card(SHIPPED.parent / "1.0.0").verify(weights=True)  # kept for rollback


def test_shipped_model_card_verifies() -> None:
    card = load_card(SHIPPED)
    card.verify(weights=True)
    assert card.ref == "sts-tumour-unet:1.1.0"
    assert card.onnx_input == "image" and card.onnx_output == "tumour_probability"
    assert card.labels[0].value == 1 and card.labels[0].type.value == "108369006"
    split = card.training["split"]
    assert "STS_008" in split["validation"] and not set(split["train"]) & set(split["validation"])
    for key in ("command", "data", "epochs", "seed", "device", "wall_seconds"):
        assert card.training[key], key
    assert set(card.metrics["validation_dice"]["per_case"]) == set(split["validation"])
    net = load_weights(build_network(card.architecture), card.weights_path)
    assert sum(p.numel() for p in net.parameters()) > 1_000_000
    assert json.loads((SHIPPED / "model.json").read_text())["schema"] == 1


def test_shipped_model_records_the_data_hash_and_split(shared_data: Path) -> None:
    """The card names exactly the cases it was trained and validated on: their files hash to the
    recorded data hash, and the split rule puts them where the card says. Cases added to the
    shared folder later (15 sarcomas in 2026-12) are not in the card and do not change this."""
    card = load_card(SHIPPED)
    rec = card.training["split"]
    named = set(rec["train"]) | set(rec["validation"])
    found = find_cases(shared_data / "ibsi_sts" / "nifti")
    assert named <= set(found), f"cases of the card not in the shared folder: {named - set(found)}"
    cases = {c: found[c] for c in named}
    assert len(cases) == card.training["data"]["cases"]
    assert card.training["data"]["sha256"] == data_sha256(cases)
    again = split_cases(cases, rec["fraction"], rec["force_validation"], rec["salt"])
    assert again.to_json() == rec


@pytest.fixture(scope="module")
def demo_dice(shared_data: Path) -> float:
    """Dice of the shipped model on STS_008 (the demo study), ONNX Runtime on 2 CPU threads."""
    card = load_card(SHIPPED)
    case = shared_data / "ibsi_sts" / "nifti" / "STS_008"
    prepared = prepare_nifti_pair("STS_008", case / "CT_image.nii.gz", case / "CT_mask.nii.gz",
                                  card)
    return evaluate_case(prepared, onnx_predictor(card, threads=2), card).dice


def test_shipped_model_segments_the_demo_case_as_recorded(demo_dice: float) -> None:
    recorded = load_card(SHIPPED).metrics["validation_dice_cpu_onnx"]["per_case"]["STS_008"]
    assert demo_dice == pytest.approx(recorded, abs=0.01)
    assert demo_dice >= 0.5  # regression floor for 1.1.0 (recorded 0.548; 1.0.0 had 0.350)


@pytest.mark.xfail(strict=True, reason="issue 5 asks Dice >= 0.6 on the demo study STS_008; "
                   "sts-tumour-unet 1.1.0 reaches 0.55 (1.0.0: 0.35; both paint some of the "
                   "muscle around this small, muscle-dense tumour): a better model must make "
                   "this pass")
def test_shipped_model_meets_the_demo_target(demo_dice: float) -> None:
    assert demo_dice >= 0.6


def test_shipped_cards_record_the_recipe_their_command_trained_with() -> None:
    """Fine-tuning reads ``training["recipe"]``; it must be what the recorded command ran."""
    import argparse
    import shlex

    from medseg_gui.training.commands import add_commands, config_from_args
    from medseg_gui.training.sampling import Recipe

    recipes = {}
    for folder in sorted((ROOT / "engines" / "sts-tumour-unet").iterdir()):
        card = load_card(folder)
        parser = argparse.ArgumentParser()
        add_commands(parser.add_subparsers())
        args = parser.parse_args(shlex.split(card.training["command"])[1:])
        recipes[card.version] = Recipe.of_card(card.training)
        assert recipes[card.version] == config_from_args(args).recipe
    assert recipes["1.1.0"] == Recipe(2.0, -100.0, (0.8, 1.25))  # hard negatives + zoom


def test_hard_negatives_and_isotropic_zoom() -> None:
    from medseg_gui.training.config import DEFAULT_NORMALISATION
    from medseg_gui.training.data import PreparedCase
    from medseg_gui.training.sampling import Recipe, case_item, train_transforms

    rng = np.random.default_rng(0)
    hu = np.where(rng.random((12, 40, 40)) < 0.5, -150, 40).astype(np.int16)  # fat or muscle
    label = np.zeros(hu.shape, np.uint8)
    label[4:8, 15:25, 15:25] = 1
    geom = Geometry(shape=hu.shape, spacing=(1.0, 1.0, 3.0))
    case = PreparedCase("c", hu, label, geom, label, geom)
    roi = (8, 32, 32)
    plain = case_item(case, DEFAULT_NORMALISATION, roi)
    hard = case_item(case, DEFAULT_NORMALISATION, roi, bg_min_hu=-100)
    flat_hu, flat_label = hu.ravel(), label.ravel()
    assert (flat_label[hard["label_bg"]] == 0).all() and (flat_hu[hard["label_bg"]] > -100).all()
    assert (flat_hu[plain["label_bg"]] == -150).any()  # without it, fat centres are drawn too
    assert np.array_equal(hard["label_fg"], plain["label_fg"])

    patches = train_transforms(roi, 6, Recipe(2.0, -100.0, (0.8, 1.25)))(hard)
    assert len(patches) == 6
    assert "label_bg" not in patches[0]  # the crop consumed the precomputed indices
    for p in patches:
        assert tuple(p["image"].shape) == (1, *roi) and tuple(p["label"].shape) == (1, *roi)
        assert set(np.unique(np.asarray(p["label"]))) <= {0.0, 1.0}  # nearest for labels
