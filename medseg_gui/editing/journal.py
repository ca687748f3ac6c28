"""Crash-safe journal of committed edits, written in the background, replayed after a crash.

One folder per session, ``data_dir()/sessions/<session-id>/journal.msj``. The file is a magic
string then records, each ``[u32 length][u32 crc32][payload]``:

* ``H`` header (JSON): session id, study/series UID, label map shape and dtype, segment table;
* ``B`` base label map (deflated), the AI draft or the map the session started from;
* ``E`` edit: the box, the deflated changed-voxel mask and values *written* (new values for an
  edit or redo, old values for an undo), and JSON with its name and the table afterwards;
* ``C`` clean close: a session ending with it needs no recovery.

The painting thread only queues bytes it already has (an :class:`Edit` keeps its arrays
compressed); a daemon thread writes, flushes and ``fsync``\\ s, so painting never waits on the
disk. Recovery replays records until the end or the first torn or corrupt one. A crash loses
what the writer had not yet synced: the strokes of its last batch (milliseconds of work; the
SIGKILL test holds every stroke committed half a second before the kill to be recovered).
"""

from __future__ import annotations

import json
import os
import queue
import struct
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medseg_gui.core.paths import data_dir
from medseg_gui.core.segmentation import Segment, Segmentation
from medseg_gui.core.volume import Volume
from medseg_gui.editing.base import LabelArray
from medseg_gui.editing.history import Edit, unpack_mask

MAGIC = b"MSGJRNL1"
JOURNAL_NAME = "journal.msj"
_REC = struct.Struct("<II")
_EDIT = struct.Struct("<6I3I")


def sessions_dir() -> Path:
    """Where session journals live."""
    path = data_dir() / "sessions"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _table_json(table: tuple[Segment, ...] | None) -> list[dict[str, Any]] | None:
    return None if table is None else [s.to_dict() for s in table]


class Journal:
    """Appends committed edits to a session journal from a background thread.

    Parameters
    ----------
    path
        The journal file (created; its folder too).
    header
        JSON-ready header: at least ``shape`` and ``dtype``; ``study_uid``, ``series_uid``,
        ``segments`` are kept for the recovery dialog.
    base
        The label map the session starts from (copied and written in the background), or
        ``None`` when recovery will be given it.
    """

    def __init__(self, path: Path, header: dict[str, Any], base: LabelArray | None = None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "wb")  # noqa: SIM115 - closed by close()
        self._file.write(MAGIC)
        self._queue: queue.Queue[bytes | LabelArray | None] = queue.Queue()
        self._seq = 0
        self.error: BaseException | None = None
        self._put(b"H" + json.dumps(header).encode())
        if base is not None:
            self._queue.put(base.copy())
        self._thread = threading.Thread(target=self._run, name="medseg-journal", daemon=True)
        self._thread.start()

    @staticmethod
    def create(shape: tuple[int, int, int], dtype: str, *, study_uid: str = "",
               series_uid: str = "", segments: tuple[Segment, ...] = (),
               base: LabelArray | None = None, session_id: str | None = None) -> Journal:
        """A new journal in ``sessions_dir()/<session-id>/`` (a fresh id when not given)."""
        sid = session_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]
        header = {"version": 1, "session_id": sid, "study_uid": study_uid,
                  "series_uid": series_uid, "shape": list(shape), "dtype": str(dtype),
                  "segments": [s.to_dict() for s in segments], "created": time.time()}
        return Journal(sessions_dir() / sid / JOURNAL_NAME, header, base)

    def _put(self, payload: bytes) -> None:
        self._queue.put(payload)

    def append(self, edit: Edit, *, undo: bool = False) -> None:
        """Queue an edit (or, with ``undo``, its reversal) for writing; returns at once."""
        self._seq += 1
        meta = json.dumps({"seq": self._seq, "name": edit.name, "undo": undo,
                           "time": time.time(),
                           "table": _table_json(edit.table_before if undo else edit.table_after)
                           }).encode()
        values = edit.old_z if undo else edit.new_z
        if edit.region is None:
            box = [0] * 6
        else:
            box = [v for s in edit.region for v in (s.start, s.stop)]
        self._put(b"E" + _EDIT.pack(*box, len(edit.mask_z), len(values), len(meta))
                  + edit.mask_z + values + meta)

    def _run(self) -> None:
        f = self._file
        stop = False
        while not stop:
            items = [self._queue.get()]
            while True:  # write everything waiting, then one fsync for the batch
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                for item in items:
                    if item is None:
                        stop = True
                        continue
                    payload = item if isinstance(item, bytes) else (
                        b"B" + zlib.compress(np.ascontiguousarray(item).tobytes(), 1))
                    f.write(_REC.pack(len(payload), zlib.crc32(payload)) + payload)
                f.flush()
                os.fsync(f.fileno())
            except OSError as exc:  # a full disk must not kill painting; the UI shows .error
                self.error = exc
            finally:
                for _ in items:
                    self._queue.task_done()

    def flush(self) -> None:
        """Block until everything queued is on disk (tests, export, clean shutdown)."""
        self._queue.join()

    def close(self, *, clean: bool = True) -> None:
        """Stop the writer; ``clean`` marks the session as needing no recovery."""
        if clean:
            self._put(b"C")
        self._queue.put(None)
        self._thread.join()
        self._file.close()


@dataclass
class Recovered:
    """What :func:`recover` rebuilt from a journal."""

    header: dict[str, Any]
    labelmap: LabelArray
    segments: list[Segment]
    n_edits: int
    torn: bool
    clean: bool


def _records(data: bytes) -> tuple[list[bytes], bool]:
    """The intact records of a journal file's bytes, and whether a torn/corrupt tail was cut."""
    if not data.startswith(MAGIC):
        raise ValueError("not a medseg journal")
    pos, out = len(MAGIC), list[bytes]()
    while pos < len(data):
        if pos + _REC.size > len(data):
            return out, True
        length, crc = _REC.unpack_from(data, pos)
        payload = data[pos + _REC.size: pos + _REC.size + length]
        if len(payload) != length or zlib.crc32(payload) != crc:
            return out, True
        out.append(payload)
        pos += _REC.size + length
    return out, False


def recover(path: Path, base: LabelArray | None = None) -> Recovered:
    """Rebuild the label map and segment table of a session from its journal.

    Parameters
    ----------
    path
        A ``journal.msj`` file, or its session folder.
    base
        The map to replay onto when the journal holds no base record (the AI draft or zeros);
        ignored when it does.

    Raises
    ------
    ValueError
        The file is not a journal, or its header is unreadable.
    """
    p = path / JOURNAL_NAME if path.is_dir() else path
    records, torn = _records(p.read_bytes())
    if not records or records[0][:1] != b"H":
        raise ValueError(f"{p}: journal has no readable header")
    header = json.loads(records[0][1:])
    shape, dtype = tuple(header["shape"]), np.dtype(header["dtype"])
    labelmap: LabelArray = (np.zeros(shape, dtype) if base is None
                            else base.astype(dtype, copy=True))
    segments = [Segment.from_dict(d) for d in header.get("segments", [])]
    n_edits, clean = 0, False
    for rec in records[1:]:
        kind = rec[:1]
        if kind == b"B":
            labelmap = np.frombuffer(zlib.decompress(rec[1:]), dtype).reshape(shape).copy()
        elif kind == b"E":
            *box, n_mask, n_val, n_meta = _EDIT.unpack_from(rec, 1)
            at = 1 + _EDIT.size
            meta = json.loads(rec[at + n_mask + n_val: at + n_mask + n_val + n_meta])
            if n_mask:
                region = tuple(slice(box[2 * a], box[2 * a + 1]) for a in range(3))
                sub = tuple(s.stop - s.start for s in region)
                changed = unpack_mask(rec[at: at + n_mask], sub)
                values = np.frombuffer(zlib.decompress(rec[at + n_mask: at + n_mask + n_val]),
                                       dtype)
                labelmap[region][changed] = values
            if meta.get("table") is not None:
                segments = [Segment.from_dict(d) for d in meta["table"]]
            n_edits += 1
        elif kind == b"C":
            clean = True
    return Recovered(header, labelmap, segments, n_edits, torn, clean)


def unfinished_sessions() -> list[Path]:
    """Session folders whose journal has no clean-close record (offer these for recovery)."""
    out = []
    for folder in sorted(sessions_dir().iterdir()):
        f = folder / JOURNAL_NAME
        if not f.is_file():
            continue
        try:
            records, _ = _records(f.read_bytes())
        except ValueError:
            continue
        if records and records[-1][:1] != b"C":
            out.append(folder)
    return out


def start_session_journal(volume: Volume | None, seg: Segmentation) -> Journal | None:
    """A new journal for an editing session of ``seg`` (its header names the study, so that
    recovery can reopen it), or ``None`` when the data folder is not writable."""
    info = volume.info if volume is not None else None
    g = seg.geometry
    header: dict[str, Any] = {
        "version": 1, "session_id": time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8],
        "study_uid": info.study_uid if info else "", "series_uid": info.series_uid if info else "",
        "shape": list(seg.labelmap.shape), "dtype": str(seg.labelmap.dtype),
        "segments": [s.to_dict() for s in seg.segments], "created": time.time(),
        "source": volume.source if volume is not None else "",
        "description": (info.series_description or info.patient_name) if info else "",
        "grid": {"spacing": list(g.spacing), "origin": list(g.origin),
                 "direction": list(g.direction)},
    }
    try:
        return Journal(sessions_dir() / header["session_id"] / JOURNAL_NAME, header,
                       seg.labelmap)
    except OSError:
        return None
