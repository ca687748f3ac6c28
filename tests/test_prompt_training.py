"""Training the promptable model: compact object sets from real CT, crops, simulated users, a
resumable run, the transfer bundle, fine-tuning with the interactive promotion gate, and the
evaluation user."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg_gui.core.geometry import Geometry
from medseg_gui.inference.model_card import load_card
from medseg_gui.inference.network import build_network
from medseg_gui.inference.prompt_encoding import PromptConfig
from medseg_gui.io.errors import LoadError
from medseg_gui.io.imagefile import read_image, write_image
from medseg_gui.training.interactive_data import (
    SourceCase,
    decode_hu,
    encode_hu,
    lps_aligned,
    merge_prepared,
    open_interactive,
    prepare_sources,
    shared_sources,
)
from medseg_gui.training.interactive_eval import next_click, region_centre
from medseg_gui.training.prompt_sampler import PatchSampler
from medseg_gui.training.prompt_trainer import (
    PhaseTimes,
    PromptTrainConfig,
    assemble,
    shared_schedule,
    train_prompt,
    train_step,
)
from medseg_gui.training.simulated_user import (
    centre_click,
    correct,
    damaged_draft,
    initial_prompts,
)

TINY = PromptConfig(spacing=(2.0, 2.0, 4.0), patch=(16, 32, 32))


def test_the_8_bit_code_keeps_soft_tissue_to_two_hu() -> None:
    hu = np.arange(-1024, 1500, dtype=np.float32)
    back = decode_hu(encode_hu(hu))
    err = np.abs(back - np.clip(hu, -1000, 940))
    soft = (hu >= -200) & (hu <= 300)
    assert err[soft].max() <= 1.51 and err[(hu >= -1000) & (hu < -200)].max() <= 5.01
    assert err[(hu > 300) & (hu <= 940)].max() <= 40.01


@pytest.mark.parametrize("direction", [(-1, 0, 0, 0, -1, 0, 0, 0, 1),
                                       (0, 1, 0, 0, 0, -1, -1, 0, 0)])
def test_lps_alignment_moves_no_voxel_in_the_world(direction: tuple[int, ...]) -> None:
    rng = np.random.default_rng(1)
    g = Geometry((5, 6, 7), (0.5, 0.7, 2.0), (10.0, -3.0, 4.0), direction)
    a = rng.normal(size=g.shape)
    b, h = lps_aligned(a, g)
    assert np.allclose(h.direction_matrix, np.eye(3))
    for k, j, i in rng.integers(0, 5, size=(10, 3)):
        if k >= b.shape[0] or j >= b.shape[1] or i >= b.shape[2]:
            continue
        src = np.rint(g.world_to_index(h.index_to_world([i, j, k]))).astype(int)
        assert a[src[2], src[1], src[0]] == b[k, j, i]


def test_splits_keep_the_automatic_models_held_out_sarcomas_and_skip_the_lung(
        shared_data: Path) -> None:
    card = load_card(Path(__file__).resolve().parent.parent / "engines" / "sts-tumour-unet"
                     / "1.1.0")
    test = {s.case_id for s in shared_sources(shared_data, splits=("test",))
            if s.collection == "sarcoma"}
    assert set(card.training["split"]["validation"]) <= test
    train = shared_sources(shared_data, splits=("train",))
    assert not test & {s.case_id for s in train}
    assert all("ibsi_lung" not in str(s.image) for s in train + shared_sources(
        shared_data, splits=("validation", "test")))
    kbp = [s for s in shared_sources(shared_data, splits=("validation", "test"))
           if s.collection == "openkbp"]
    assert len(kbp) == 24 and {s.split for s in kbp} == {"validation", "test"}


@pytest.fixture(scope="module")
def prepared(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real CTs cut small: a sarcoma around its tumour and an OpenKBP neck."""
    root = tmp_path_factory.mktemp("src")
    sts = shared_data / "ibsi_sts" / "nifti" / "STS_002"
    img, mask = read_image(sts / "CT_image.nii.gz"), read_image(sts / "CT_mask.nii.gz")
    k, j, i = (int(v) for v in np.argwhere(mask.array).mean(axis=0))
    lo, hi = [max(i - 40, 0), max(j - 40, 0), max(k - 12, 0)], [i + 40, j + 40, k + 12]
    hi = [min(h, n) for h, n in zip(hi, img.geometry.size_ijk, strict=True)]
    write_image(img.crop(lo, hi), root / "ct.nii.gz")
    write_image(mask.crop(lo, hi), root / "gtv.nii.gz")
    kbp = shared_data / "openkbp" / "train_pt_1"
    sources = [
        SourceCase("sts", "sarcoma", "train", root / "ct.nii.gz",
                   (("GTV", "tumour", root / "gtv.nii.gz", 0),)),
        SourceCase("kbp", "openkbp", "validation", kbp / "CT_image.nii.gz",
                   (("PTV70", "target", kbp / "PTV70.nii.gz", 0),
                    ("Mandible", "organ", kbp / "Mandible.nii.gz", 0))),
    ]
    out = tmp_path_factory.mktemp("prepared")
    prepare_sources(sources, out, TINY.spacing, command="test")
    return out


def test_a_prepared_set_holds_each_object_on_the_stored_grid(prepared: Path) -> None:
    data = open_interactive(prepared)
    assert [c.case_id for c in data.select("train")] == ["sts"]
    kbp = data.load("kbp")
    assert [o.name for o in kbp.info.objects] == ["PTV70", "Mandible"]
    assert kbp.info.geometry.spacing[0] == pytest.approx(3.906, abs=0.01)  # coarser: kept
    for info, m in zip(kbp.info.objects, kbp.masks, strict=True):
        assert int(m.sum()) == info.voxels and m.shape == kbp.hu.shape
    sts = data.load("sts")
    assert sts.info.geometry.spacing == pytest.approx((2.0, 2.0, 4.0), abs=0.01)
    assert sts.hu.min() >= -1000 and sts.hu.max() <= 940
    assert 20 < sts.info.objects[0].volume_ml < 60  # STS_002's tumour, cut to the crop
    assert len(data.data_sha256) == 64 and "sarcoma" in (prepared / "objects.json").read_text()


def test_group_odds_can_be_chosen_per_run(prepared: Path) -> None:
    from medseg_gui.training.train_prompt_commands import _odds

    data = open_interactive(prepared)
    cases = [data.load(c.case_id) for c in data.cases]
    odds = _odds(["sarcoma/tumour=0.6", "openkbp/target=0.2"])
    drawn = PatchSampler(cases, TINY, torch.device("cpu"), odds=odds).group_odds()
    # the named groups keep their ratio; the unnamed organ group gets an equal share
    assert drawn["sarcoma/tumour"] / drawn["openkbp/target"] == pytest.approx(3.0, rel=0.02)
    assert drawn["openkbp/organ"] == pytest.approx(0.4 / 1.2, abs=0.002)
    for bad in ("sarcoma/tumour=lots", "sarcoma=0.3", "sarcoma/tumour=-1"):
        with pytest.raises(LoadError, match="--odds"):
            _odds([bad])


def test_crops_hold_their_object_and_simulated_prompts_land_inside(prepared: Path) -> None:
    data = open_interactive(prepared)
    sampler = PatchSampler([data.load(c.case_id) for c in data.cases], TINY, torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    hu, label = sampler.sample(8, gen)
    assert hu.shape == (8, *TINY.patch) and label.dtype == torch.bool
    assert bool(label.flatten(1).any(1).all())
    assert float(hu.min()) >= -1100 and float(hu.max()) <= 1000
    centre = centre_click(label, gen).round().long()
    for b in range(8):
        assert bool(label[b, centre[b, 0], centre[b, 1], centre[b, 2]])
    batch, mode = initial_prompts(label, gen)
    assert batch.prompts.positive.shape[0] == 8 and mode.shape == (8,)
    pred = torch.zeros_like(label)
    correct(batch, label, pred, gen)  # everything missed: a positive click in the object
    pts, ok = batch.prompts.positive[:, -1].round().long(), batch.prompts.positive_valid[:, -1]
    for b in range(8):
        if ok[b]:
            assert bool(label[b, pts[b, 0], pts[b, 1], pts[b, 2]])
    draft = damaged_draft(label, gen)
    inter = (draft & label).flatten(1).sum(1).float()
    assert bool((inter > 0).any())


def test_a_run_resumes_and_its_bundle_assembles_into_a_model(prepared: Path,
                                                             tmp_path: Path) -> None:
    cfg = PromptTrainConfig(data=str(prepared), out=str(tmp_path / "m" / "1.0.0"),
                            work=str(tmp_path / "work"), model_id="tiny-prompt",
                            channels=(4, 8), res_units=1, prompt=TINY, steps=4, batch=2,
                            log_every=1, checkpoint_every=2, warmup_steps=1, export=False)
    cfg.minutes = 1e-6  # stops after its first step, checkpointed
    assert train_prompt(cfg) is None
    state = (tmp_path / "work" / "checkpoint" / "state.json").read_text()
    assert '"step": 1' in state
    cfg.minutes, cfg.resume, cfg.export = 0.0, True, True
    card = train_prompt(cfg)
    assert card is not None and card.promptable and card.training["steps"] == 4
    assert card.training["split"]["validation"] == ["kbp"]
    again = assemble(tmp_path / "work" / "transfer", tmp_path / "asm", version="1.0.1",
                     validation_data=prepared)
    assert again.ref == "tiny-prompt:1.0.1" and load_card(again.folder).prompt == card.prompt
    assert "float16" in again.training["weights"]
    # the figure runs are chosen on, stored in the card the registry and the gate read
    from medseg_gui.inference.registry import ModelRegistry

    val = load_card(again.folder).metrics["validation_dice"]
    assert set(val["per_case"]) == {"kbp/PTV70", "kbp/Mandible"}
    assert val["backend"] == "onnxruntime cpu" and 0.0 <= val["mean"] <= 1.0
    shipped = tmp_path / "shipped" / "tiny-prompt"
    shipped.mkdir(parents=True)
    (tmp_path / "asm").rename(shipped / "1.0.1")
    version = ModelRegistry(shipped=tmp_path / "shipped", user=tmp_path / "u").active(
        "tiny-prompt")
    assert version is not None and version.validation_dice == val["mean"]
    manifest = json.loads((prepared / "objects.json").read_text(encoding="utf-8"))
    manifest["cases"] = [c for c in manifest["cases"] if c["split"] == "train"]
    train_only = tmp_path / "train-only"
    train_only.mkdir()
    (train_only / "objects.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(LoadError, match="no validation cases"):  # checked before writing
        assemble(tmp_path / "work" / "transfer", tmp_path / "asm2", validation_data=train_only)
    assert not (tmp_path / "asm2").exists()


def test_fine_tuning_is_gated_on_held_out_interactive_dice(prepared: Path,
                                                           tmp_path: Path) -> None:
    from medseg_gui.inference.registry import ModelRegistry
    from medseg_gui.training.prompt_finetune import PromptFinetuneConfig, finetune_prompt

    cfg = PromptTrainConfig(data=str(prepared), out=str(tmp_path / "shipped" / "tp" / "1.0.0"),
                            work=str(tmp_path / "w"), model_id="tp", channels=(4, 8),
                            res_units=1, prompt=TINY, steps=2, batch=2, warmup_steps=1)
    base = train_prompt(cfg)
    assert base is not None
    ft = PromptFinetuneConfig(base=str(base.folder), out=str(tmp_path / "user" / "tp" / "ft1"),
                              labelled=(str(prepared),), validation_data=str(prepared),
                              version="1.0.0-ft1", steps=2, batch=2)
    new = finetune_prompt(ft)
    val = new.metrics["validation_dice"]
    assert set(val["per_case"]) == {"kbp/PTV70", "kbp/Mandible"} and "3 simulated" in val["metric"]
    assert new.training["fine_tuned_from"] == "tp:1.0.0" and new.promptable
    registry = ModelRegistry(shipped=tmp_path / "shipped", user=tmp_path / "user")
    assert registry.active("tp") is not None
    base_same = new.metrics["base_validation_dice_same_run"]
    # the shipped card records its own figure the same way the fine-tune computed it
    from medseg_gui.inference.torch_backend import TorchBackend
    from medseg_gui.training.interactive_eval import validate_prepared

    data = open_interactive(prepared)
    again = validate_prepared([data.load("kbp")], base, TorchBackend(base, device="cpu"))
    assert again["mean"] == pytest.approx(base_same, abs=1e-6)


def test_the_evaluation_user_clicks_centres_of_the_largest_error() -> None:
    g = Geometry((20, 40, 40), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    k, j, i = np.indices(g.shape)
    ref = (k - 10) ** 2 + (j - 20) ** 2 + (i - 20) ** 2 <= 8**2
    ref[1:3, 2:4, 2:4] = True  # a small second part: the first click goes to the big one
    c = region_centre(ref, g)
    assert c is not None and np.allclose(c, (20, 20, 10), atol=0.01)
    pred = ref.copy()
    pred[:, :, 24:] = False  # missed cap (x >= 24)
    pred[2:5, 32:36, 32:36] = True  # leak (48 voxels)
    nxt = next_click(ref, pred, g)
    assert nxt is not None and nxt[1] and 24 <= nxt[0][0] <= 28
    assert next_click(ref, ref, g) is None


def test_runs_side_by_side_share_the_first_fitted_schedule(tmp_path: Path) -> None:
    path = str(tmp_path / "schedule.txt")
    assert shared_schedule("", 123) == 123  # no file: each run keeps its own fit
    assert shared_schedule(path, 4100) == 4100  # the first run writes its fit ...
    assert shared_schedule(path, 3900) == 4100  # ... and a run beside it takes it
    assert Path(path).read_text() == "4100\n"


def test_phase_times_account_for_every_calibration_step(prepared: Path) -> None:
    data = open_interactive(prepared)
    sampler = PatchSampler([data.load(c.case_id) for c in data.select("train")], TINY,
                           torch.device("cpu"))
    net = build_network(PromptTrainConfig(data="", out="", work="", channels=(4, 8),
                                          res_units=1).architecture())
    opt = torch.optim.AdamW(net.parameters())
    times = PhaseTimes()
    gen = torch.Generator().manual_seed(0)
    from monai.losses.dice import DiceCELoss

    for _ in range(2):
        train_step(net, opt, sampler, TINY, 2, gen, False, DiceCELoss(to_onehot_y=True,
                                                                      softmax=True), times)
    assert times.steps == 2 and all(v > 0 for v in times.seconds.values())
    assert "simulated user" in times.summary()


def test_merged_sets_train_on_every_case_under_one_hash(prepared: Path, tmp_path: Path) -> None:
    import json
    import shutil

    other = tmp_path / "other"
    shutil.copytree(prepared, other)
    manifest = json.loads((other / "objects.json").read_text())
    for c in manifest["cases"]:
        (other / f"{c['case_id']}.npz.xz").rename(other / f"x{c['case_id']}.npz.xz")
        c["case_id"] = "x" + c["case_id"]
    (other / "objects.json").write_text(json.dumps(manifest))
    merged = merge_prepared([prepared, other], tmp_path / "merged")
    a = open_interactive(prepared)
    assert len(merged.cases) == 2 * len(a.cases)
    assert merged.data_sha256 != a.data_sha256
    first = a.cases[0].case_id
    np.testing.assert_array_equal(merged.load("x" + first).hu, a.load(first).hu)
    with pytest.raises(LoadError, match="more than one set"):
        merge_prepared([prepared, prepared], tmp_path / "twice")
