"""``medseg queue add|list|show|remove`` and ``medseg models list|promote|rollback``.

:func:`queue_study` is the Qt-free "send to training" used by the CLI (the GUI, which already has
the volume and its headers in memory, calls :func:`~medseg_gui.training.deid.deidentify_headers`
and :meth:`~medseg_gui.training.queue.TrainingQueue.add` directly).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg_gui.core.progress import Progress, no_progress
from medseg_gui.core.segmentation import Segment, Segmentation
from medseg_gui.core.volume import Volume
from medseg_gui.io.errors import LoadError
from medseg_gui.training.queue import META, CorrectionEffort, QueueItem, QueueStatus, TrainingQueue
from medseg_gui.training.review_filter import (
    ANY_STATUS_HINT,
    describe,
    select_segments,
)


def correction_effort(draft: npt.NDArray[Any] | None, corrected: npt.NDArray[Any],
                      editing_seconds: float | None = None) -> CorrectionEffort:
    """Voxels added/removed and Dice of a draft against its correction (foreground = nonzero).

    With no draft, every corrected voxel counts as added and Dice is ``None``.
    """
    c = np.asarray(corrected) != 0
    if draft is None:
        return CorrectionEffort(int(c.sum()), 0, None, editing_seconds)
    d = np.asarray(draft) != 0
    total = int(d.sum()) + int(c.sum())
    dice = 1.0 if total == 0 else 2.0 * float((d & c).sum()) / total
    return CorrectionEffort(int((c & ~d).sum()), int((d & ~c).sum()), dice, editing_seconds)


def _mask_on(volume: Volume, path: str | Path, what: str) -> Segmentation:
    """The mask ``path`` on ``volume``'s grid, read as every other command reads masks
    (:func:`~medseg_gui.io.masks.load_mask`: label images, .seg.nrrd, DICOM SEG, RTSTRUCT), with
    its segment table (review statuses where the format keeps them: a label NIfTI's sidecar, a
    .seg.nrrd, a SEG; bare labels get a table without any)."""
    from medseg_gui.io.masks import load_mask

    seg = load_mask(path, volume)
    if seg.labelmap.size and int(seg.labelmap.max()) > 255:
        raise LoadError(path, f"{what} holds label {int(seg.labelmap.max())}; the queue keeps "
                        "labels 0..255")
    return seg


def queue_study(study: str | Path, mask: str | Path, *, draft: str | Path | None = None,
                model_ref: str = "", annotator: str = "", series_uid: str | None = None,
                editing_seconds: float | None = None, secret: str | None = None,
                any_status: bool = False, queue: TrainingQueue | None = None,
                progress: Progress = no_progress) -> QueueItem:
    """De-identify ``study`` and queue it with its corrected ``mask`` (and AI ``draft``).

    Only the mask's completed segments are queued for learning unless ``any_status``. The
    others keep their voxels in the queued mask, so that fine-tuning can treat them as unknown
    rather than background (see :mod:`.review_filter`); the case's ``meta.json`` lists the
    queued segments and the skipped ones with their review status (:func:`skipped_segments`).

    Parameters
    ----------
    study
        DICOM folder or file, or a NIfTI/NRRD/MHA image.
    mask, draft
        Masks on the study's grid: label images (NIfTI/NRRD/MHA), .seg.nrrd, DICOM SEG or
        RTSTRUCT.
    model_ref, annotator, editing_seconds
        The model that drew the draft, who corrected it and for how long.
    any_status
        Queue every segment, completed or not.
    series_uid, secret, queue, progress
        Series to pick, de-identification secret, queue (default: the user's), progress callback.

    Raises
    ------
    LoadError
        Unreadable study or masks, masks not on the study's grid, or no segment to queue.
    """
    from medseg_gui.training.deid import deidentify_study

    deid = deidentify_study(study, series_uid=series_uid, secret=secret, progress=progress)
    mask_seg = _mask_on(deid.volume, mask, "mask")
    corrected = mask_seg.labelmap.astype(np.uint8)
    labels = {int(v) for v in np.unique(corrected) if v}
    chosen = select_segments([s for s in mask_seg.segments if s.label in labels], any_status)
    if not chosen.kept:
        raise LoadError(mask, f"nothing to queue: {chosen.describe_skipped() or 'empty mask'}"
                        f"; {ANY_STATUS_HINT}")
    draft_arr = (None if draft is None else
                 _mask_on(deid.volume, draft, "draft").labelmap.astype(np.uint8))
    effort = correction_effort(draft_arr, corrected, editing_seconds)  # of the whole mask
    metadata = {**deid.metadata, "segments": [s.to_dict() for s in chosen.kept],
                "skipped_segments": [s.to_dict() for s in chosen.skipped]}
    own = queue is None
    q = queue if queue is not None else TrainingQueue()
    try:
        return q.add(deid.volume.array, deid.volume.geometry, corrected, metadata=metadata,
                     patient=deid.patient, draft=draft_arr, model_ref=model_ref, effort=effort,
                     annotator=annotator)
    finally:
        if own:
            q.close()


def skipped_segments(item: QueueItem) -> list[Segment]:
    """The segments :func:`queue_study` left out of ``item`` (not completed)."""
    meta = json.loads((item.folder / META).read_text("utf-8"))
    return [Segment.from_dict(d) for d in meta.get("skipped_segments", [])]


def _get(q: TrainingQueue, item_id: int) -> QueueItem:
    try:
        return q.get(item_id)
    except KeyError as exc:
        raise LoadError(q.root, f"no queue item {item_id} (see 'medseg queue list')") from exc


def cmd_queue_add(args: argparse.Namespace) -> int:
    item = queue_study(args.study, args.mask, draft=args.draft, model_ref=args.model or "",
                       annotator=args.annotator or "", series_uid=args.series,
                       editing_seconds=args.editing_seconds, any_status=args.any_status)
    print(f"queued item {item.id} (case {item.case_id}, patient {item.patient or '-'})")
    skipped = skipped_segments(item)
    if skipped:
        print(f"skipped {describe(skipped)}: {ANY_STATUS_HINT}")
    return 0


def cmd_queue_list(args: argparse.Namespace) -> int:
    with TrainingQueue() as q:
        items = q.items(QueueStatus(args.status) if args.status else None)
    if args.json:
        print(json.dumps([i.to_json() for i in items], indent=2))
        return 0
    print(f"{'id':>4}  {'created':<19}  {'status':<8}  {'dice':>5}  {'model':<24}  annotator")
    for i in items:
        dice = i.effort.dice_draft_vs_corrected
        print(f"{i.id:>4}  {i.created[:19]:<19}  {i.status.value:<8}  "
              f"{'-' if dice is None else f'{dice:.3f}':>5}  {i.model_ref or '-':<24}  "
              f"{i.annotator or '-'}")
    print(f"{len(items)} item(s)")
    return 0


def cmd_queue_show(args: argparse.Namespace) -> int:
    with TrainingQueue() as q:
        item = _get(q, args.id)
        meta = json.loads((item.folder / "meta.json").read_text("utf-8"))
    meta["sop_instance_uids"] = len(meta.get("sop_instance_uids", []))
    print(json.dumps({**item.to_json(), "metadata": meta}, indent=2))
    return 0


def cmd_queue_remove(args: argparse.Namespace) -> int:
    with TrainingQueue() as q:
        _get(q, args.id)
        q.remove(args.id)
    print(f"removed queue item {args.id}")
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from medseg_gui.inference.registry import ModelRegistry

    reg = ModelRegistry()
    rows = reg.versions(args.model_id)
    if args.json:
        print(json.dumps([v.to_json() for v in rows], indent=2))
        return 0
    active = {m: reg.active(m) for m in {v.model_id for v in rows}}
    for v in rows:
        mark = "*" if (a := active[v.model_id]) is not None and a.ref == v.ref else " "
        dice = v.validation_dice
        # a promptable model's validation Dice is after simulated clicks: say so
        what = "val Dice@3 clicks" if v.card.promptable else "val Dice"
        print(f"{mark} {v.ref:<36} {v.origin:<8} "
              f"{what} {'-' if dice is None else f'{dice:.3f}'}  {v.folder}")
    print(f"{len(rows)} version(s); * = active")
    return 0


def cmd_models_promote(args: argparse.Namespace) -> int:
    from medseg_gui.inference.registry import ModelRegistry

    v = ModelRegistry().promote(args.ref, force=args.force, reason=args.reason or "")
    print(f"{v.model_id}: active version is now {v.version}")
    return 0


def cmd_models_rollback(args: argparse.Namespace) -> int:
    from medseg_gui.inference.registry import ModelRegistry

    v = ModelRegistry().rollback(args.model_id, reason=args.reason or "")
    print(f"{v.model_id}: rolled back, active version is now {v.version}")
    return 0


def add_commands(subparsers: Any) -> None:
    """Register ``queue`` and ``models`` on ``subparsers`` (from ``add_subparsers``)."""
    queue = subparsers.add_parser("queue", help="the training queue of corrected cases")
    qs = queue.add_subparsers(dest="queue_command", required=True)
    p = qs.add_parser("add", help="de-identify a study and queue it with its corrected mask")
    p.add_argument("study", help="DICOM folder or file, .nii.gz, .nrrd or .mha")
    p.add_argument("--mask", required=True, help="corrected mask on the study's grid")
    p.add_argument("--draft", help="the AI draft the mask was corrected from")
    p.add_argument("--model", metavar="ID:VER", help="the model version that drew the draft")
    p.add_argument("--annotator", help="who corrected the mask")
    p.add_argument("--series", help="SeriesInstanceUID to pick from a folder of several")
    p.add_argument("--editing-seconds", type=float, help="time spent correcting")
    p.add_argument("--any-status", action="store_true",
                   help="queue every segment, not only those whose review status is completed")
    p.set_defaults(func=cmd_queue_add)
    p = qs.add_parser("list", help="list queued cases")
    p.add_argument("--status", choices=[s.value for s in QueueStatus])
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_queue_list)
    p = qs.add_parser("show", help="print one queued case and its de-identified metadata")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_queue_show)
    p = qs.add_parser("remove", help="delete a queued case and its files")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_queue_remove)

    models = subparsers.add_parser("models", help="model versions: list, promote, rollback")
    ms = models.add_subparsers(dest="models_command", required=True)
    p = ms.add_parser("list", help="shipped and user-trained versions; * marks the active one")
    p.add_argument("model_id", nargs="?", help="only this model id")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_models_list)
    p = ms.add_parser("promote", help="make ID:VER active (refused if its validation Dice "
                      "is worse than the active version's)")
    p.add_argument("ref", metavar="ID:VER")
    p.add_argument("--force", action="store_true", help="promote even if it validates worse")
    p.add_argument("--reason", help="note recorded in the history")
    p.set_defaults(func=cmd_models_promote)
    p = ms.add_parser("rollback", help="return model ID to the version active before")
    p.add_argument("model_id", metavar="ID")
    p.add_argument("--reason", help="note recorded in the history")
    p.set_defaults(func=cmd_models_rollback)
