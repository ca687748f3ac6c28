"""The durable training queue: corrected cases waiting to fine-tune the model.

``data_dir()/queue/`` holds ``queue.sqlite`` (WAL, synchronous=FULL; a row per case) and
``cases/<case-id>/`` (image, mask, draft as NIfTI, ``meta.json``). Files are written atomically
(temp, fsync, ``os.replace``, fsync of the folder) and hashed *before* the row is committed, so a
row only points at complete files whose SHA-256 it records. A kill between files and commit leaves
a folder without a row: opening the queue removes such orphans when no other process is adding
(``.lock``: shared while adding, tried exclusively by the clean-up). Only voxels and de-identified
metadata (:mod:`medseg_gui.training.deid`) are written: no path, DICOM header or ``StudyInfo``.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

from medseg_gui.core.atomic import atomic_path, fsync_folder, write_bytes
from medseg_gui.core.geometry import Geometry
from medseg_gui.core.paths import data_dir
from medseg_gui.core.volume import to_sitk
from medseg_gui.inference.model_card import sha256_file
from medseg_gui.io.errors import LoadError

try:  # POSIX; on Windows orphans are only removed once they are an hour old
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

SCHEMA_VERSION = 1
IMAGE, MASK, DRAFT, META = "image.nii.gz", "mask.nii.gz", "draft.nii.gz", "meta.json"
_COLUMNS = "id, case_id, created, updated, patient, files, model_ref, effort, annotator, status"


class QueueStatus(StrEnum):
    """Where a queued case stands."""

    QUEUED = "queued"  # waiting for the next fine-tune
    USED = "used"  # a fine-tune has trained on it
    EXCLUDED = "excluded"  # kept, but not to be trained on


@dataclass(frozen=True)
class CorrectionEffort:
    """How much the annotator changed the AI draft."""

    voxels_added: int = 0
    voxels_removed: int = 0
    dice_draft_vs_corrected: float | None = None
    editing_seconds: float | None = None

    @staticmethod
    def from_json(d: dict[str, Any]) -> CorrectionEffort:
        """Build from :func:`dataclasses.asdict` output (unknown keys ignored)."""
        return CorrectionEffort(**{f.name: d[f.name] for f in fields(CorrectionEffort)
                                   if f.name in d})


@dataclass(frozen=True)
class QueueItem:
    """One queued case; ``files`` maps each file name in ``folder`` to its SHA-256."""

    id: int
    case_id: str
    created: str
    updated: str
    patient: str
    folder: Path
    files: dict[str, str]
    model_ref: str
    effort: CorrectionEffort
    annotator: str
    status: QueueStatus

    @property
    def image_file(self) -> Path:
        return self.folder / IMAGE

    @property
    def mask_file(self) -> Path:
        return self.folder / MASK

    @property
    def draft_file(self) -> Path | None:
        return self.folder / DRAFT if DRAFT in self.files else None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {**asdict(self), "folder": str(self.folder), "status": self.status.value}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _write_nifti(array: npt.NDArray[Any], geometry: Geometry, path: Path) -> str:
    """Write an array on ``geometry`` as NIfTI atomically; return its SHA-256."""
    image = to_sitk(array, geometry)
    with atomic_path(path, ".nii.gz", durable=True) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)
    return sha256_file(path)


def _as_mask(array: npt.ArrayLike, geometry: Geometry, what: str) -> npt.NDArray[np.uint8]:
    a = np.asarray(array)
    if tuple(a.shape) != geometry.shape or (a.size and (a.min() < 0 or a.max() > 255)):
        raise ValueError(f"{what} must hold 0..255 on the image grid {geometry.shape}, "
                         f"got shape {a.shape}")
    return a.astype(np.uint8, copy=False)


class TrainingQueue:
    """The queue in ``root`` (default ``data_dir()/queue``); opening it removes orphan folders."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else data_dir() / "queue"
        self.cases_dir = self.root / "cases"
        self.cases_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.root / "queue.sqlite", timeout=30.0,
                                   isolation_level=None)
        if self._db.execute("PRAGMA user_version").fetchone()[0] > SCHEMA_VERSION:
            raise LoadError(self.root, "training queue written by a newer medseg; update it")
        self._db.executescript(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA secure_delete=ON; "
            "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "case_id TEXT UNIQUE NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL, "
            "patient TEXT NOT NULL, files TEXT NOT NULL, model_ref TEXT NOT NULL, "
            "effort TEXT NOT NULL, annotator TEXT NOT NULL, status TEXT NOT NULL); "
            f"PRAGMA user_version={SCHEMA_VERSION};")
        self.removed_orphans = self._clean_orphans()

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def __enter__(self) -> TrainingQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _adding_lock(self, exclusive: bool, wait: bool) -> Iterator[bool]:
        if fcntl is None:  # pragma: no cover
            yield not exclusive
            return
        with open(self.root / ".lock", "a+b") as f:
            flags = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB)
            try:
                fcntl.flock(f.fileno(), flags)
            except BlockingIOError:
                yield False
                return
            yield True  # closing the file releases the lock

    def _clean_orphans(self) -> list[str]:
        """Remove case folders without a row (left by a process killed mid-add)."""
        removed: list[str] = []
        with self._adding_lock(exclusive=True, wait=False) as nobody_adding:
            known = {r[0] for r in self._db.execute("SELECT case_id FROM items")}
            for folder in self.cases_dir.iterdir():
                if folder.name in known:
                    continue
                try:
                    old = datetime.now(UTC).timestamp() - folder.stat().st_mtime > 3600
                except FileNotFoundError:  # removed meanwhile by another process
                    continue
                if nobody_adding or old:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder.name)
        return removed

    def add(self, image: npt.NDArray[Any], geometry: Geometry, mask: npt.ArrayLike, *,
            metadata: dict[str, Any], patient: str = "", draft: npt.ArrayLike | None = None,
            model_ref: str = "", effort: CorrectionEffort | None = None,
            annotator: str = "") -> QueueItem:
        """Store one case durably and return its row.

        Parameters
        ----------
        image, geometry
            Voxels (``[k, j, i]``) and their grid; only these reach the disk, never identifiers.
        mask, draft
            Corrected label map and the AI draft, on the same grid (values 0..255).
        metadata, patient
            De-identified metadata and pseudonymous patient id (:mod:`~.deid`).
        model_ref, effort, annotator
            ``"model-id:version"`` that drew the draft, correction effort, who corrected it.
        """
        mask_u8 = _as_mask(mask, geometry, "mask")
        draft_u8 = None if draft is None else _as_mask(draft, geometry, "draft")
        if tuple(np.shape(image)) != geometry.shape:
            raise ValueError(f"image shape {np.shape(image)} does not match {geometry.shape}")
        effort = effort or CorrectionEffort()
        case_id = secrets.token_hex(8)
        folder = self.cases_dir / case_id
        with self._adding_lock(exclusive=False, wait=True):
            folder.mkdir()
            fsync_folder(self.cases_dir)
            files = {IMAGE: _write_nifti(np.asarray(image), geometry, folder / IMAGE),
                     MASK: _write_nifti(mask_u8, geometry, folder / MASK)}
            if draft_u8 is not None:
                files[DRAFT] = _write_nifti(draft_u8, geometry, folder / DRAFT)
            meta = {**metadata, "case_id": case_id, "geometry": geometry.to_dict()}
            write_bytes(folder / META, json.dumps(meta, indent=2, sort_keys=True).encode(),
                        durable=True)
            files[META] = sha256_file(folder / META)
            now = _now()
            cur = self._db.execute(
                f"INSERT INTO items ({_COLUMNS[4:]}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (case_id, now, now, patient, json.dumps(files), model_ref,
                 json.dumps(asdict(effort)), annotator, QueueStatus.QUEUED.value))
        return self.get(int(cur.lastrowid or 0))

    def set_status(self, item_id: int, status: QueueStatus) -> QueueItem:
        """Change a case's status (e.g. to ``USED`` after a fine-tune)."""
        self._db.execute("UPDATE items SET status=?, updated=? WHERE id=?",
                         (QueueStatus(status).value, _now(), item_id))
        return self.get(item_id)

    def remove(self, item_id: int) -> None:
        """Delete a case: the row first, then its folder (an orphan if killed in between)."""
        item = self.get(item_id)
        self._db.execute("DELETE FROM items WHERE id=?", (item_id,))
        shutil.rmtree(item.folder, ignore_errors=True)

    def _select(self, where: str = "", args: tuple[Any, ...] = ()) -> list[QueueItem]:
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM items {where} ORDER BY id", args)
        return [QueueItem(int(i), case, created, updated, patient, self.cases_dir / case,
                          json.loads(files), model, CorrectionEffort.from_json(json.loads(effort)),
                          annotator, QueueStatus(status))
                for i, case, created, updated, patient, files, model, effort, annotator, status
                in rows]

    def get(self, item_id: int) -> QueueItem:
        """The row ``item_id``; :class:`KeyError` when there is none."""
        found = self._select("WHERE id=?", (int(item_id),))
        if not found:
            raise KeyError(f"no queue item {item_id}")
        return found[0]

    def items(self, status: QueueStatus | None = None) -> list[QueueItem]:
        """All rows (optionally of one status), oldest first."""
        if status is None:
            return self._select()
        return self._select("WHERE status=?", (QueueStatus(status).value,))

    def verify(self) -> list[str]:
        """Problems found: missing files or hash mismatches (empty when consistent)."""
        problems = []
        for item in self.items():
            for name, sha in item.files.items():
                path = item.folder / name
                if not path.is_file() or sha256_file(path) != sha:
                    problems.append(f"item {item.id}: {name} missing or not matching its SHA-256")
        return problems
