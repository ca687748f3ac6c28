"""No lost work: a crash journal per editing session, and recovery at the next start.

Each editing session writes ``data_dir()/sessions/<id>/journal.msj`` (see
:mod:`medseg_gui.editing.journal`); its header also names the study's source path and grid so
that recovery can reopen the study. A session that ends with unexported edits, or not at all
(a crash, ``kill -9``), stays "unfinished"; the next start offers to recover it. Recovering or
declining renames the journal (``journal.recovered`` / ``journal.discarded``), so it is offered
once and never deleted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject
from PySide6.QtWidgets import QMessageBox

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.segmentation import Segmentation
from medseg_gui.core.volume import Volume
from medseg_gui.editing.journal import JOURNAL_NAME, recover
from medseg_gui.editing.journal import unfinished_sessions as _unfinished

if TYPE_CHECKING:
    from medseg_gui.ui.workstation import Workstation


def confirm_replace(window: Workstation, force: bool = False) -> bool:
    """Whether the edited segmentation may be replaced (the window's confirm_replace_edits)."""
    if force or not window.editing.has_edits:
        return True
    if not window.dialogs:
        return False
    return QMessageBox.question(
        window, "Replace your edits?", "The segmentation has corrections. Replace it anyway? "
        "(They stay recoverable from the session journal.)") == QMessageBox.StandardButton.Yes


@dataclass(frozen=True)
class PendingSession:
    """An unfinished session, as the recovery dialog describes it."""

    folder: Path
    header: dict[str, Any]
    n_edits: int

    @property
    def text(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.header.get("created", 0)))
        what = self.header.get("description") or self.header.get("source") or "a study"
        return f"{what}, started {when}: {self.n_edits} edit(s)"


def pending_sessions() -> list[PendingSession]:
    """Unfinished sessions that hold at least one edit, newest first."""
    out = []
    for folder in _unfinished():
        try:
            rec = recover(folder)
        except (OSError, ValueError):
            continue
        if rec.n_edits:
            out.append(PendingSession(folder, rec.header, rec.n_edits))
    return sorted(out, key=lambda p: p.header.get("created", 0), reverse=True)


def retire(folder: Path, how: str) -> None:
    """Stop offering a session: rename its journal to ``journal.<how>`` (kept on disk)."""
    journal = folder / JOURNAL_NAME
    if journal.is_file():
        journal.rename(folder / f"journal.{how}")


def _geometry(header: dict[str, Any], volume: Volume) -> Geometry:
    grid = header.get("grid")
    shape = tuple(int(v) for v in header["shape"])
    if not grid:
        return volume.geometry
    return Geometry(shape=(shape[0], shape[1], shape[2]), spacing=grid["spacing"],
                    origin=grid["origin"], direction=tuple(grid["direction"]))


class RecoveryManager(QObject):
    """Offers unfinished sessions at start and restores one onto the loaded study."""

    def __init__(self, window: Workstation) -> None:
        super().__init__(window)
        self.window = window
        self._waiting: PendingSession | None = None
        window.studyLoaded.connect(self._on_study_loaded)

    def offer(self) -> None:
        """At start (with dialogs): ask about the newest unfinished session."""
        sessions = pending_sessions()
        if not sessions:
            return
        newest = sessions[0]
        answer = QMessageBox.question(
            self.window, "Recover unsaved edits?",
            "The last editing session did not close normally:\n\n"
            f"{newest.text}\n\nRecover these edits?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Discard,
            QMessageBox.StandardButton.Yes)
        if answer != QMessageBox.StandardButton.Yes:
            retire(newest.folder, "discarded")
            return
        if self._matches(newest):
            self.recover_session(newest.folder)
            return
        source = newest.header.get("source")
        if source and Path(source).exists():
            self._waiting = newest
            self.window.open_path(source)
        else:
            self.window.show_error(f"Cannot reopen the study of {newest.folder.name}; load it, "
                                   "then use Edit > Recover session")

    def _matches(self, session: PendingSession) -> bool:
        vol = self.window.volume
        if vol is None:
            return False
        uid = session.header.get("series_uid")
        if uid and vol.info.series_uid and uid != vol.info.series_uid:
            return False
        return _geometry(session.header, vol).shape == tuple(session.header["shape"])

    def _on_study_loaded(self, _volume: object) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None and self._matches(waiting):
            self.recover_session(waiting.folder)

    def recover_session(self, folder: str | Path) -> bool:
        """Rebuild a session's label map from its journal onto the loaded study.

        The segmentation is replaced without asking (this *is* the user's work) and a new
        journal starts from it; the old journal is renamed ``journal.recovered``.
        """
        folder = Path(folder)
        vol = self.window.volume
        if vol is None:
            self.window.show_error("Load the study before recovering its edits")
            return False
        try:
            rec = recover(folder)
            geometry = _geometry(rec.header, vol)
            seg = Segmentation(np.ascontiguousarray(rec.labelmap), geometry, rec.segments)
        except (OSError, ValueError) as exc:
            self.window.show_error(f"Cannot recover {folder.name}: {exc}")
            return False
        self.window.set_segmentation(seg, force=True)
        self.window.editing.unsaved = True  # still not exported: offer it again after a crash
        retire(folder, "recovered")
        note = " (the last, torn record was skipped)" if rec.torn else ""
        self.window.statusBar().showMessage(f"Recovered {rec.n_edits} edit(s){note}", 10000)
        return True
