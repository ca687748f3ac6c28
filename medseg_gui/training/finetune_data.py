"""Inputs of a fine-tune as prepared folders: queued corrections and unlabelled studies.

:func:`prepare_queue` resamples the queue's de-identified image/corrected-mask pairs onto the base
model's grid, :func:`prepare_unlabeled` does the same for unlabelled studies (a DICOM folder, an
image file, or a training folder whose masks are then ignored) with an empty mask. Both write the
prepared-folder layout of :mod:`.data`, so the fine-tune itself needs neither SimpleITK nor
pydicom and the folders can be carried to a GPU machine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.progress import Progress, check, no_progress
from medseg_gui.core.segmentation import Segment
from medseg_gui.inference.model_card import ModelCard
from medseg_gui.io.errors import LoadError
from medseg_gui.training.consistency import BODY_HU
from medseg_gui.training.data import (
    PREPARED_NAME,
    PreparedCase,
    PreparedSet,
    open_prepared,
    prepare_arrays,
    save_case,
)
from medseg_gui.training.queue import META, QueueItem, QueueStatus, TrainingQueue
from medseg_gui.training.review_filter import (
    ANY_STATUS_HINT,
    is_tumour,
    select_segments,
    tumour_and_unknown,
)


def _write_manifest(folder: Path, card: ModelCard, digest: str, source: str,
                    cases: list[str]) -> PreparedSet:
    norm = card.normalisation
    manifest = {"spacing": list(card.spacing), "clip": [norm.low, norm.high],
                "data_sha256": digest, "source": source, "cases": sorted(cases),
                "command": "medseg finetune"}
    (folder / PREPARED_NAME).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return open_prepared(folder)


def _up_to_date(folder: Path, card: ModelCard, digest: str) -> PreparedSet | None:
    try:
        done = open_prepared(folder)
    except LoadError:
        return None
    norm = card.normalisation
    same = (done.data_sha256, done.spacing, done.clip) == (digest, card.spacing,
                                                          (norm.low, norm.high))
    return done if same else None


def trainable_items(queue: TrainingQueue) -> list[QueueItem]:
    """Every queued or already used correction (not the excluded ones), oldest first.

    A fine-tune starts from the base weights each time, so it learns from all corrections so far.
    """
    return [i for i in queue.items() if i.status in (QueueStatus.QUEUED, QueueStatus.USED)]


@dataclass(frozen=True)
class QueueCase:
    """A queued correction and the segments of its mask to learn from (none: the case was queued
    without a segment table, and every label of its mask is learnt from as tumour)."""

    item: QueueItem
    kept: tuple[Segment, ...]

    @property
    def labels(self) -> tuple[int, ...]:
        """The kept segments' labels (empty: every label of the mask)."""
        return tuple(s.label for s in self.kept)


def queued_segments(item: QueueItem) -> list[Segment]:
    """The segments recorded with a queued case; empty for a case queued before review
    statuses were recorded."""
    meta = json.loads((item.folder / META).read_text(encoding="utf-8"))
    return [Segment.from_dict(d) for d in meta.get("segments", [])]


def select_queue(queue: TrainingQueue, any_status: bool = False
                 ) -> tuple[list[QueueCase], list[str]]:
    """The trainable cases with the labels to learn from, and one line per case that lost
    segments (not completed: :mod:`.review_filter`) or was left out entirely.

    A case queued before statuses were recorded has none: it is left out unless ``any_status``.
    """
    cases, skipped = [], []
    for item in trainable_items(queue):
        recorded = queued_segments(item)
        chosen = select_segments(recorded, any_status)
        if not recorded and not any_status:
            skipped.append(f"skipped queue case {item.id}: queued without review statuses; "
                           f"{ANY_STATUS_HINT}")
            continue
        if chosen.skipped:
            left = "left out" if chosen.kept else "skipped"
            skipped.append(f"{left} in queue case {item.id}: {chosen.describe_skipped()}; "
                           f"{ANY_STATUS_HINT}")
        if recorded and not chosen.kept:
            continue
        cases.append(QueueCase(item, chosen.kept))
    return cases, skipped


def case_target(case: QueueCase, mask: np.ndarray, card: ModelCard
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """``(tumour, unknown)`` of a queued mask for the automatic model ``card``: its kept
    segments of the card's label types are tumour; every other labelled voxel (segments left
    out now or when queued) is unknown (:func:`.review_filter.tumour_and_unknown`). A case
    queued without a segment table has no unknown voxels: all its labels are tumour."""
    if not case.kept:
        return np.asarray(mask) > 0, None
    return tumour_and_unknown(mask, case.kept, [lb.type for lb in card.labels])


def prepare_queue(queue: TrainingQueue, out: str | Path, card: ModelCard,
                  progress: Progress = no_progress, *, any_status: bool = False
                  ) -> PreparedSet:
    """Prepare the queue's corrections (case ids are the queue's pseudonymous ids): only their
    completed segments unless ``any_status``, the others' voxels marked unknown
    (:func:`case_target`); what is left out is told through ``progress``."""
    from medseg_gui.io.imagefile import read_image

    cases, skipped = select_queue(queue, any_status)
    for line in skipped:
        check(progress, 0.0, line)
    if not cases:
        raise LoadError(queue.root, "the training queue holds no corrected cases with completed "
                        "segments" + ("" if any_status else f" ({ANY_STATUS_HINT})"))
    # What each segment becomes is part of the digest; "ignore" marks preparations that keep
    # left-out segments as unknown (older ones cleared them to background).
    types = [lb.type for lb in card.labels]
    lines = sorted(f"{c.item.case_id} {c.item.files.get('image.nii.gz')} "
                   f"{c.item.files.get('mask.nii.gz')} {c.labels} "
                   f"{[is_tumour(s, types) for s in c.kept]}" for c in cases)
    digest = hashlib.sha256("\n".join(["ignore", *lines]).encode()).hexdigest()
    folder = Path(out)
    if (done := _up_to_date(folder, card, digest)) is not None:
        return done
    folder.mkdir(parents=True, exist_ok=True)
    norm = card.normalisation
    for n, case in enumerate(cases):
        item = case.item
        check(progress, n / len(cases), f"preparing queued case {item.case_id}")
        image, mask = read_image(item.image_file), read_image(item.mask_file)
        tumour, unknown = case_target(case, mask.array, card)
        save_case(folder, prepare_arrays(item.case_id, image.array, tumour, image.geometry,
                                         card.spacing, (norm.low, norm.high), unknown))
    return _write_manifest(folder, card, digest, f"training queue {queue.root}",
                           [c.item.case_id for c in cases])


def body_crop(case: PreparedCase, margin: int = 4) -> PreparedCase:
    """``case`` cut to the box of voxels above ``BODY_HU`` (plus ``margin``) on the model grid.

    The air around an unlabelled patient teaches nothing and only makes the folder bigger.
    """
    body = np.nonzero(case.image > BODY_HU)
    if not body[0].size:
        return case
    lo = [max(int(a.min()) - margin, 0) for a in body]
    hi = [min(int(a.max()) + margin + 1, n) for a, n in zip(body, case.image.shape, strict=True)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    g = case.geometry
    origin = g.affine @ np.array([lo[2], lo[1], lo[0], 1.0])  # (i, j, k) of the box corner
    geom = Geometry(tuple(b - a for a, b in zip(lo, hi, strict=True)), g.spacing,
                    (float(origin[0]), float(origin[1]), float(origin[2])), g.direction)
    return replace(case, image=case.image[box], label=case.label[box], geometry=geom)


def prepare_unlabeled(sources: Sequence[str | Path], out: str | Path, card: ModelCard,
                      progress: Progress = no_progress) -> PreparedSet:
    """Prepare unlabelled studies: each source is a DICOM folder or an image file."""
    from medseg_gui.io.loader import load_volume

    paths = [Path(s) for s in sources]
    names = ["body-crop-150", *sorted(str(p.resolve()) for p in paths)]
    digest = hashlib.sha256("\n".join(names).encode())
    folder = Path(out)
    if (done := _up_to_date(folder, card, digest.hexdigest())) is not None:
        return done
    folder.mkdir(parents=True, exist_ok=True)
    norm = card.normalisation
    ids = []
    for n, path in enumerate(paths):
        check(progress, n / len(paths), f"preparing unlabelled {path.name}")
        vol = load_volume(path)
        case_id = path.name.split(".")[0] or f"unlabeled_{n}"
        empty = np.zeros(vol.array.shape, np.uint8)
        save_case(folder, body_crop(prepare_arrays(case_id, vol.array, empty, vol.geometry,
                                                   card.spacing, (norm.low, norm.high))))
        ids.append(case_id)
    return _write_manifest(folder, card, digest.hexdigest(), "unlabelled: " + ", ".join(
        str(p) for p in paths), ids)
