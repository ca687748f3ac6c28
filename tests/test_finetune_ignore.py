"""Segments a reader left unfinished are unknown, not background, when the tumour model is
fine-tuned: on STS_008's CT with one completed, one draft and one completed non-tumour segment,
through the queue, preparation, patch sampling, the loss and ``medseg finetune``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from monai.losses.dice import DiceCELoss
from monai.utils.misc import set_determinism
from scipy import ndimage

from medseg_gui.cli import main
from medseg_gui.core.resample import resample_array
from medseg_gui.core.review import Review, ReviewStatus
from medseg_gui.core.segmentation import (
    TISSUE,
    CodedConcept,
    Segment,
    Segmentation,
    SegmentSource,
)
from medseg_gui.inference.model_card import load_card
from medseg_gui.inference.models import DEFAULT_PROMPT_MODEL, resolve_model
from medseg_gui.inference.network import build_network, load_weights
from medseg_gui.io.imagefile import read_image
from medseg_gui.io.label_nifti import write_label_nifti
from medseg_gui.training.config import TrainConfig
from medseg_gui.training.data import IGNORE, PreparedCase, prepare_arrays
from medseg_gui.training.export import write_model
from medseg_gui.training.finetune_data import prepare_queue, select_queue
from medseg_gui.training.masked_loss import KnownDiceCELoss
from medseg_gui.training.prompt_finetune import prepare_queue_objects
from medseg_gui.training.queue import TrainingQueue
from medseg_gui.training.queue_commands import queue_study, skipped_segments
from medseg_gui.training.sampling import BG, FG, Recipe, case_item, train_transforms
from tests.test_finetune import ROI, _prepared

DONE = Review(ReviewStatus.COMPLETED, "reader-one", "2025-01-31T14:05:09Z")
DRAFT = Review(ReviewStatus.DRAFT, "root", "2025-01-30T08:00:00Z")
CYST = CodedConcept("367643001", "SCT", "Cyst")
MUSCLE = CodedConcept("127954009", "SCT", "Skeletal muscle")


@pytest.fixture
def queued(shared_data: Path, tmp_path: Path) -> dict[str, Any]:
    """STS_008 queued with every segment (``--any-status``): its tumour cut in two along the
    slices, the lower half completed (label 1) and the upper half an AI draft (label 2), plus a
    completed "Cyst" box (label 3, another abnormal structure) and a completed "Muscle" box
    (label 4, tissue) away from it. Returns the segments' masks on the CT grid and the files
    queued."""
    case = shared_data / "ibsi_sts/nifti/STS_008"
    gt = read_image(case / "CT_mask.nii.gz")
    lm = (gt.array > 0).astype(np.uint8)
    ks = np.unique(np.nonzero(lm)[0])
    upper = np.zeros(lm.shape, bool)
    upper[ks[len(ks) // 2]:] = True
    lm[upper & (lm == 1)] = 2
    lm[20:24, 10:20, 10:20] = 3  # away from the tumour (checked below)
    lm[20:24, 10:20, 30:40] = 4
    assert not (gt.array[18:26, 5:25, 5:45] > 0).any()
    segs = [Segment(1, "GTV lower", source=SegmentSource.SEMIAUTOMATIC, review=DONE),
            Segment(2, "GTV upper", source=SegmentSource.AUTOMATIC, review=DRAFT),
            Segment(3, "Cyst", type=CYST, review=DONE),
            Segment(4, "Muscle", category=TISSUE, type=MUSCLE, review=DONE)]
    mask = write_label_nifti(Segmentation(lm, gt.geometry, segs), tmp_path / "mask.nii.gz")
    queue_study(case / "CT_image.nii.gz", mask, any_status=True)
    return {"done": lm == 1, "draft": lm == 2, "cyst": lm == 3, "muscle": lm == 4,
            "files": (case / "CT_image.nii.gz", mask)}


def _prepare(tmp_path: Path, name: str, any_status: bool = False,
             root: Path | None = None) -> PreparedCase:
    with TrainingQueue(root) as q:
        prepared = prepare_queue(q, tmp_path / name, resolve_model(), any_status=any_status)
        (item,) = q.items()
    return prepared.load(item.case_id)


def test_a_draft_segment_is_queued_and_prepared_as_unknown(
        queued: dict[str, Any], tmp_path: Path) -> None:
    with TrainingQueue() as q:
        cases, told = select_queue(q)
        assert [c.labels for c in cases] == [(1, 3, 4)]
        assert told[0].startswith("left out in queue case 1: segment 2 'GTV upper' (draft)")
    case = _prepare(tmp_path, "prep")
    assert set(np.unique(case.label).tolist()) == {0, 1, IGNORE}
    grid = case.original_geometry

    def on_model_grid(m: np.ndarray) -> np.ndarray:
        return resample_array(m.astype(np.uint8), grid, case.geometry, order=0) > 0

    draft, done, cyst, muscle = (on_model_grid(queued[k])
                                 for k in ("draft", "done", "cyst", "muscle"))
    assert draft.sum() > 1000 and (case.label[draft] == IGNORE).all()  # not 0, not 1
    # The unknown region is not grown past the draft's model voxels by much, and the completed
    # tumour next to it stays tumour (measured: 5430 vs 4209 voxels, 99.3% kept); the completed
    # cyst, a lesion coded otherwise, is unknown too; the completed muscle is background.
    assert (case.label[cyst] == IGNORE).all() and (case.label[muscle] == 0).all()
    assert (case.label == IGNORE).sum() < 1.5 * (draft.sum() + cyst.sum())
    assert (case.label[done] == 1).mean() > 0.95
    # Ignored voxels are never a patch centre, for tumour or background.
    item = case_item(case, resolve_model().normalisation, resolve_model().roi_size, -100.0)
    label = item["label"][0].ravel()
    assert (label[item["label" + FG]] == 1).all() and (label[item["label" + BG]] == 0).all()
    assert item["label" + FG].size == int((label == 1).sum())
    # Validation's original mask holds the completed tumour only.
    assert np.array_equal(case.original_mask, queued["done"].astype(np.uint8))
    # Queued without --any-status, the draft's voxels are kept and named as skipped: the
    # same unknown region.
    with TrainingQueue(tmp_path / "q2") as q:
        item = queue_study(*queued["files"], queue=q)
        assert np.array_equal(np.unique(read_image(item.mask_file).array), [0, 1, 2, 3, 4])
        assert [s.label for s in skipped_segments(item)] == [2]
    assert np.array_equal(_prepare(tmp_path, "prep-q2", root=tmp_path / "q2").label, case.label)
    # --any-status learns the draft as tumour: only the cyst is unknown then.
    everything = _prepare(tmp_path, "prep-all", any_status=True)
    assert (everything.label[draft] == 1).mean() > 0.9
    assert (everything.label[cyst] == IGNORE).all()
    near_cyst = ndimage.binary_dilation(cyst, np.ones((3, 3, 3), bool))
    assert not ((everything.label == IGNORE) & ~near_cyst).any()


def test_the_promptable_fine_tune_takes_completed_segments_as_objects(
        queued: dict[str, Any], tmp_path: Path) -> None:
    """The draft's voxels, now kept in the queued mask, are no object of the promptable model;
    each completed segment is one, whatever its type or category."""
    with TrainingQueue() as q:
        card = resolve_model(DEFAULT_PROMPT_MODEL)
        objects = prepare_queue_objects(q, tmp_path / "objects", card)
    (case,) = objects.cases
    assert [o.name for o in case.objects] == ["segment1", "segment3", "segment4"]
    loaded = objects.load(case.case_id)
    assert all(m.sum() > 0 for m in loaded.masks) and not (loaded.masks[0] & loaded.masks[1]).any()


def test_a_thin_unknown_region_survives_a_coarser_grid(shared_data: Path) -> None:
    """One slice of STS_008's CT (3.27 mm) marked unknown, prepared at 9 mm slices: whichever
    slice it is, the prepared label keeps some of it (linear resampling alone steps over about a
    quarter of them)."""
    ct = read_image(shared_data / "ibsi_sts/nifti/STS_008/CT_image.nii.gz")
    nothing = np.zeros(ct.array.shape, np.uint8)
    for k in range(ct.array.shape[0]):
        sheet = np.zeros(ct.array.shape, bool)
        sheet[k, 40:80, 40:80] = True
        case = prepare_arrays("sheet", ct.array, nothing, ct.geometry, (1.0, 1.0, 9.0),
                              (-200.0, 300.0), sheet)
        assert (case.label == IGNORE).any(), k
        assert (case.label[:, 45:75, 45:75] == IGNORE).any(axis=0).all(), k  # the whole sheet


def test_loss_skips_unknown_voxels_and_is_dice_ce_without_them(
        queued: dict[str, Any], tmp_path: Path) -> None:
    card = resolve_model()
    net = load_weights(build_network(card.architecture), card.weights_path).eval()
    recipe = Recipe.of_card(card.training)

    def crop(case: PreparedCase) -> tuple[torch.Tensor, torch.Tensor]:
        set_determinism(7)
        item = case_item(case, card.normalisation, card.roi_size, recipe.bg_min_hu)
        patch = train_transforms(card.roi_size, 1, recipe)(item)[0]
        x = torch.as_tensor(np.asarray(patch["image"]))[None]
        with torch.no_grad():
            return net(x).float(), torch.as_tensor(np.asarray(patch["label"]))[None]

    logits, y = crop(_prepare(tmp_path, "all", any_status=True))
    y = torch.where(y == IGNORE, 0.0, y)  # a crop with nothing unknown
    assert (y == 1).any() and not (y == IGNORE).any()
    assert torch.equal(KnownDiceCELoss()(logits, y),
                       DiceCELoss(to_onehot_y=True, softmax=True)(logits, y))
    logits, y = crop(_prepare(tmp_path, "completed"))
    unknown = (y == IGNORE).expand_as(logits)
    assert 1000 < int(unknown[:, 0].sum()) < y.numel() // 2
    moved = logits.clone().requires_grad_(True)
    loss = KnownDiceCELoss()(moved, y)
    loss.backward()
    assert moved.grad is not None and not moved.grad[unknown].any()
    other = torch.where(unknown, -5.0 * logits + 3.0, logits)  # only the unknown voxels change
    assert torch.equal(KnownDiceCELoss()(other, y), loss.detach())
    tumour_up = torch.zeros_like(logits)
    tumour_up[:, 1] = 1.0  # a known voxel's output does count
    assert not torch.equal(KnownDiceCELoss()(logits + tumour_up * ~unknown, y), loss.detach())


def test_finetune_command_runs_on_a_queue_with_a_draft(
        queued: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A tiny base on the CPU (the shipped one's grid), two steps with the mean-teacher term."""
    data = _prepared(tmp_path / "val", ["CASE_A", "CASE_V"])
    unl = _prepared(tmp_path / "unl", ["UNL_1"], labelled=False)
    base = tmp_path / "engines" / "tiny" / "1.0.0"
    cfg = TrainConfig(data=str(data), out=str(base), model_id="tiny", version="1.0.0", roi=ROI,
                      channels=(4, 8))
    torch.manual_seed(0)
    write_model(build_network(cfg.architecture()), cfg,
                {"split": {"train": ["CASE_A"], "validation": ["CASE_V"]}},
                {"validation_dice": {"per_case": {"CASE_V": 0.99}, "mean": 0.99}})
    out = tmp_path / "models" / "tiny" / "1.0.1"
    assert main(["finetune", "--from", str(base), "--queue", "--validation-data", str(data),
                 "--unlabeled", str(unl), "--steps", "2", "--device", "cpu", "--workers", "0",
                 "--log-every", "1", "--out", str(out), "--work", str(tmp_path / "w")]) == 0
    printed = capsys.readouterr().out
    assert "left out in queue case 1: segment 2 'GTV upper' (draft)" in printed
    card = load_card(out, verify=True)
    assert card.training["steps"] == 2 and card.training["consistency"]["used"] is True
    assert np.isfinite(card.training["final_loss"])
    prepared = json.loads((tmp_path / "w" / "queue" / "prepared.json").read_text())
    (case_id,) = prepared["cases"]
    assert case_id in card.training["labelled_cases"]
