"""The annotations of the study on screen: kept on disk after every change, told to listeners.

The store holds the current :class:`~medseg_gui.core.annotations.Annotations` and rewrites the
study's file (:func:`~medseg_gui.core.annotations.annotations_file`) whenever they change, so
that a crash loses nothing. Changes a user makes go through
:meth:`medseg_gui.editing.editor.SegmentEditor.change_annotations`, which makes each one undo
step that keeps the annotations before and after; undo and redo put those back through
:meth:`AnnotationStore.replace`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from medseg_gui.core.annotations import (
    Annotations,
    annotations_file,
    load_annotations,
    save_annotations,
)
from medseg_gui.core.volume import Volume

Listener = Callable[[Annotations], None]


class AnnotationStore:
    """The current annotations of one study and the file they are kept in.

    Parameters
    ----------
    path
        The file (rewritten on each change); ``None`` keeps them in memory only.
    notes
        What the study has so far.
    volume
        The study, whose UIDs the file records.
    """

    def __init__(self, path: Path | None = None, notes: Annotations | None = None,
                 volume: Volume | None = None) -> None:
        self.path = path
        self.volume = volume
        self._notes = notes if notes is not None else Annotations()
        self._listeners: list[Listener] = []
        self.error = ""  # the last save that failed (the notes stay in memory)

    @staticmethod
    def of_study(volume: Volume) -> AnnotationStore:
        """The store of ``volume``'s study, with what its file already holds.

        An unreadable file is kept aside as ``<name>.unreadable`` (never overwritten) and the
        study starts without annotations; :attr:`error` says so. A volume made in memory has
        no file: its annotations live as long as the store.
        """
        path = annotations_file(volume)
        if path is None:
            return AnnotationStore(None, None, volume)
        try:
            return AnnotationStore(path, load_annotations(path), volume)
        except ValueError as exc:
            path.replace(path.with_suffix(".unreadable"))
            store = AnnotationStore(path, None, volume)
            store.error = str(exc)
            return store

    @property
    def notes(self) -> Annotations:
        return self._notes

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(notes)`` after every change."""
        self._listeners.append(listener)

    def replace(self, notes: Annotations) -> None:
        """Make ``notes`` current, write them to the file and tell the listeners."""
        if notes == self._notes:
            return
        self._notes = notes
        if self.path is not None:
            try:
                save_annotations(notes, self.path, self.volume)
                self.error = ""
            except OSError as exc:  # a full disk must not stop the reader measuring
                self.error = f"{self.path}: annotations not saved ({exc})"
        for listener in self._listeners:
            listener(notes)
