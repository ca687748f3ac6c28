"""Review status on real CT: every export format and back, Slicer's tags, edits, the journal,
and what the training queue and fine-tuning take."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medseg_gui.core.review import Review, ReviewStatus
from medseg_gui.core.segmentation import Segment, Segmentation, SegmentSource
from medseg_gui.core.volume import Volume
from medseg_gui.editing.editor import SegmentEditor
from medseg_gui.editing.journal import Journal, recover
from medseg_gui.editing.review import set_status
from medseg_gui.inference.models import resolve_model
from medseg_gui.io.dicom_seg import read_dicom_seg, source_files, write_dicom_seg
from medseg_gui.io.errors import LoadError
from medseg_gui.io.label_nifti import read_label_nifti, write_label_nifti
from medseg_gui.io.loader import load_volume
from medseg_gui.io.masks import load_mask
from medseg_gui.io.review_status import review_from_slicer, seg_description
from medseg_gui.io.seg_nrrd import read_seg_nrrd, write_seg_nrrd
from medseg_gui.training.data import IGNORE
from medseg_gui.training.finetune_data import prepare_queue, select_queue
from medseg_gui.training.queue import TrainingQueue
from medseg_gui.training.queue_commands import add_commands, queue_study
from tests.test_export_sr import _dciodvfy

STATUSES = [Review(ReviewStatus.COMPLETED, "reader-one", "2025-01-31T14:05:09Z"),
            Review(ReviewStatus.DRAFT, "root", "2025-01-30T08:00:00Z"),
            Review(ReviewStatus.FLAGGED, "a-very-long-user-name-for-dicom", "2025-02-01T09:10:11Z"),
            Review(ReviewStatus.IN_PROGRESS, "reader-two", "2025-02-02T10:00:00Z"),
            None]


@pytest.fixture(scope="module")
def sts(shared_data: Path) -> tuple[Volume, Segmentation]:
    """STS_008's DICOM CT and its reference GTV, cut into five segments of every status."""
    ct = load_volume(shared_data / "ibsi_sts/dicom/STS_008/CT/image")
    gt = read_label_nifti(shared_data / "ibsi_sts/nifti/STS_008/CT_mask.nii.gz")
    lm = gt.labelmap.copy()
    ks = np.unique(np.nonzero(lm)[0])
    for n, part in enumerate(np.array_split(ks, 5)):
        slab = np.zeros(lm.shape, bool)
        slab[part] = True
        lm[slab & (lm == 1)] = n + 1  # five slabs of the tumour: five labelled segments
    segs = [Segment(n + 1, f"GTV part {n + 1}", source=SegmentSource.SEMIAUTOMATIC,
                    model="sts-unet:1.2.0", review=r) for n, r in enumerate(STATUSES)]
    return ct, Segmentation(lm, ct.geometry, segs)


def _reviews(seg: Segmentation) -> list[Review | None]:
    return [s.review for s in seg.segments]


def test_label_nifti_sidecar_round_trip(sts: tuple[Volume, Segmentation], tmp_path: Path) -> None:
    _, seg = sts
    back = read_label_nifti(write_label_nifti(seg, tmp_path / "m.nii.gz"))
    assert _reviews(back) == STATUSES
    side = json.loads((tmp_path / "m.json").read_text())
    assert side["segments"][0]["review"] == {"status": "completed", "by": "reader-one",
                                             "at": "2025-01-31T14:05:09Z"}
    assert side["segments"][4]["review"] is None


def test_seg_nrrd_round_trip_with_slicer_tags(sts: tuple[Volume, Segmentation],
                                              tmp_path: Path) -> None:
    _, seg = sts
    out = write_seg_nrrd(seg, tmp_path / "m.seg.nrrd")
    (back,) = read_seg_nrrd(out)
    assert _reviews(back) == STATUSES
    head = out.read_bytes().split(b"\n\n")[0].decode()
    tags = {line.split(":=")[0]: line.split(":=")[1] for line in head.splitlines()
            if "_Tags:=" in line}
    # Slicer's own status tag, with Slicer's words (a draft is "notstarted")
    assert "Segmentation.Status:completed|" in tags["Segment0_Tags"]
    assert "Segmentation.Status:notstarted|" in tags["Segment1_Tags"]
    assert "Segmentation.Status:flagged|" in tags["Segment2_Tags"]
    assert "Segmentation.Status:inprogress|" in tags["Segment3_Tags"]
    assert "Segmentation.Status" not in tags["Segment4_Tags"]
    for value in tags.values():  # every tag has Slicer's key:value form (its parser needs ":")
        assert all(":" in t for t in value.split("|") if t)
    # The status changed in Slicer: Slicer's status wins, who and when are unknown.
    edited = head.replace("Segmentation.Status:notstarted|", "Segmentation.Status:completed|")
    out.write_bytes(edited.encode() + b"\n\n" + out.read_bytes().split(b"\n\n", 1)[1])
    (back,) = read_seg_nrrd(out)
    assert back.segments[1].review == Review(ReviewStatus.COMPLETED)
    assert _reviews(back)[2:] == STATUSES[2:]
    # A file written by Slicer alone: only its status tag.
    assert review_from_slicer("inprogress", {"Some field": "x"}) == \
        Review(ReviewStatus.IN_PROGRESS)
    assert review_from_slicer("bogus", {}) is None


def test_dicom_seg_round_trip_in_segment_description(sts: tuple[Volume, Segmentation],
                                                     tmp_path: Path) -> None:
    ct, seg = sts
    out = write_dicom_seg(seg, source_files(ct), tmp_path / "seg.dcm")
    if shutil.which("dciodvfy"):
        errors, warnings = _dciodvfy(out)
        assert errors == [] and warnings <= 1  # the source's old-style patient name
    ds = pydicom.dcmread(out, stop_before_pixels=True)
    texts = [it.get("SegmentDescription") for it in ds.SegmentSequence]
    assert texts[0] == "Review: completed by reader-one at 2025-01-31T14:05:09Z"
    assert texts[4] is None and all(len(t) <= 64 for t in texts[:4])
    (back,) = read_dicom_seg(out, ct.geometry)
    assert np.array_equal(back.labelmap, seg.labelmap)
    got = _reviews(back)
    assert got[:2] + got[3:] == STATUSES[:2] + STATUSES[3:]
    # The long user name is shortened to fit the 64 characters; status and time stay.
    flagged = got[2]
    assert flagged is not None and flagged.status is ReviewStatus.FLAGGED
    assert flagged.at == STATUSES[2].at and STATUSES[2].by.startswith(flagged.by)  # type: ignore[union-attr]
    assert len(seg_description(STATUSES[2])) == 64  # type: ignore[arg-type]
    # load_mask (the GUI and every command) sees the same statuses.
    assert _reviews(load_mask(out, ct))[:2] == STATUSES[:2]


def test_editing_a_draft_makes_it_in_progress_undoably_and_the_journal_keeps_it(
        sts: tuple[Volume, Segmentation], tmp_path: Path) -> None:
    ct, ref = sts
    seg = Segmentation(ref.labelmap.copy(), ref.geometry, list(ref.segments))
    journal = Journal(tmp_path / "s" / "journal.msj", {"shape": list(seg.geometry.shape),
                                                       "dtype": "uint8"}, seg.labelmap)
    editor = SegmentEditor(seg, ct.array, journal=journal, draft=seg.labelmap.copy())
    editor.active_label = 2  # the draft
    k, j, i = (int(v) for v in np.argwhere(seg.labelmap == 2)[0])
    editor.begin_stroke([i, j, k])
    edit = editor.end_stroke()
    assert edit is not None and edit.table_after is not None
    painted = seg.segment(2).review
    assert painted is not None and painted.status is ReviewStatus.IN_PROGRESS and painted.by
    assert seg.segment(1).review == STATUSES[0]  # untouched: still completed
    editor.apply(set_status(seg, 1, ReviewStatus.FLAGGED, by="second-reader"))
    assert editor.history.undo_name() == "Status: flagged for a second reader"
    journal.flush()
    # A crash now: the journal replays the statuses with the voxels.
    rec = recover(tmp_path / "s")
    assert [s.review for s in rec.segments][:2] == [seg.segment(1).review, painted]
    assert rec.segments[0].review.by == "second-reader"  # type: ignore[union-attr]
    editor.undo()  # the status
    editor.undo()  # the stroke: the draft is a draft again
    assert seg.segment(1).review == STATUSES[0] and seg.segment(2).review == STATUSES[1]
    journal.flush()
    assert [s.review for s in recover(tmp_path / "s").segments] == STATUSES
    journal.close()


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="medseg")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_queue_takes_completed_segments_and_says_what_it_skipped(
        sts: tuple[Volume, Segmentation], shared_data: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    _, seg = sts
    study = shared_data / "ibsi_sts/dicom/STS_008/CT/image"
    mask = write_label_nifti(seg, tmp_path / "m.nii.gz")
    assert _cli(["queue", "add", str(study), "--mask", str(mask)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("queued item 1 ")
    assert ("skipped segment 2 'GTV part 2' (draft), segment 3 'GTV part 3' (flagged for a "
            "second reader), segment 4 'GTV part 4' (in progress), segment 5 'GTV part 5' "
            "(not set): only completed segments") in out
    with TrainingQueue() as q:
        (item,) = q.items()
        from medseg_gui.io.imagefile import read_image

        # The skipped segments keep their voxels, for fine-tuning to leave them unknown.
        assert np.array_equal(read_image(item.mask_file).array, seg.labelmap)
        # Fine-tuning takes it: its one queued segment is completed.
        cases, skipped = select_queue(q)
        assert [(c.item.id, c.labels) for c in cases] == [(1, (1,))] and skipped == []
    # --any-status queues every segment; fine-tuning then leaves the others out by default.
    assert _cli(["queue", "add", str(study), "--mask", str(mask), "--any-status"]) == 0
    assert "skipped" not in capsys.readouterr().out
    with TrainingQueue() as q:
        second = q.items()[1]
        from medseg_gui.io.imagefile import read_image

        assert np.array_equal(read_image(second.mask_file).array, seg.labelmap)
        cases, skipped = select_queue(q)
        assert [(c.item.id, c.labels) for c in cases] == [(1, (1,)), (2, (1,))]
        assert len(skipped) == 1 and skipped[0].startswith("left out in queue case 2: segment 2")
        cases, skipped = select_queue(q, any_status=True)
        assert [c.labels for c in cases] == [(1,), (1, 2, 3, 4, 5)] and skipped == []
        # Preparing the fine-tune: both cases learn the completed segment only, with the others
        # unknown (skipped when queued or when fine-tuning alike), and say so.
        told: list[str] = []
        card = resolve_model()
        prepared = prepare_queue(q, tmp_path / "prep", card,
                                 lambda _f, m: told.append(m) or True)
        assert any(m.startswith("left out in queue case 2: segment 2 'GTV part 2' (draft)")
                   for m in told)
        first, second = (prepared.load(c.case_id) for c in q.items())
        assert np.array_equal(first.original_mask, (seg.labelmap == 1).astype(np.uint8))
        assert np.array_equal(second.label, first.label) and (first.label == IGNORE).any()
        everything = prepare_queue(q, tmp_path / "prep-all", card, any_status=True)
        assert np.array_equal(everything.load(second.case_id).original_mask,
                              (seg.labelmap > 0).astype(np.uint8))
    # Nothing completed: nothing queued, one clear error.
    none_done = Segmentation(seg.labelmap, seg.geometry,
                             [dataclasses.replace(s, review=STATUSES[1]) for s in seg.segments])
    with pytest.raises(LoadError, match="nothing to queue: segment 1 'GTV part 1' \\(draft\\)"):
        queue_study(study, write_label_nifti(none_done, tmp_path / "d.nii.gz"))
    with TrainingQueue() as q:
        assert len(q.items()) == 2
