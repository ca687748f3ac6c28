"""The one object the viewer's tools talk to: strokes, tool changes, undo/redo, journal, effort.

The viewer gathers inputs (mouse positions as continuous ``(i, j, k)`` indices, tool options) and
calls this; it redraws the boxes the listeners are told about. Everything here is plain Python
and runs on the GUI thread: a stamp costs well under a millisecond, and the journal writes in its
own thread.

Typical use::

    editor = SegmentEditor(seg, volume.array, draft=seg.labelmap.copy(), journal=journal)
    editor.add_listener(lambda region: overlay.update(region))
    editor.add_segment("Tumour", with_first_stroke=True)   # joins the next stroke's step
    editor.begin_stroke(ijk)          # mouse press
    editor.continue_stroke(ijk)       # mouse move
    editor.end_stroke()               # mouse release: one undo step
    editor.apply(region_grow(editor.segmentation, editor.image, ijk, editor.active_label))
    with editor.group("Smooth + keep largest"):   # several tools, one undo step
        editor.apply(median_smooth(editor.segmentation, label, 1.0))
        editor.apply(keep_largest_island(editor.segmentation, label))
    editor.undo(); editor.redo()
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg_gui.core.annotations import Annotations
from medseg_gui.core.segmentation import Segment, Segmentation
from medseg_gui.editing.annotations import AnnotationStore
from medseg_gui.editing.base import Change, Region, region_union, spacing_kji
from medseg_gui.editing.brush import BrushSettings, BrushStroke
from medseg_gui.editing.effort import Effort, correction_effort
from medseg_gui.editing.history import Edit, History
from medseg_gui.editing.journal import Journal
from medseg_gui.editing.review import after_voxel_edit, may_follow_edits
from medseg_gui.editing.segments import add_segment, delete_segment

Listener = Callable[[Region | None], None]
"""Called after the label map or table changed: the box to redraw, ``None`` for the table."""


class SegmentEditor:
    """Edits a :class:`Segmentation` in place with undo, journaling and effort tracking.

    Parameters
    ----------
    segmentation
        Edited in place (label map and segment table).
    image
        The image on the same grid (HU), for intensity limits; ``None`` disables them.
    history
        Undo history (a 256 MB one by default).
    journal
        Where committed edits are journaled, or ``None``.
    draft
        The AI draft, for :meth:`effort`; ``None`` compares with an empty map.
    """

    def __init__(self, segmentation: Segmentation, image: npt.NDArray[Any] | None = None, *,
                 history: History | None = None, journal: Journal | None = None,
                 draft: npt.NDArray[Any] | None = None) -> None:
        self.segmentation = segmentation
        self.image = image
        self.history = history if history is not None else History()
        self.journal = journal
        self.draft = draft
        self.brush = BrushSettings()
        self.active_label: int | None = (segmentation.segments[0].label
                                         if segmentation.segments else None)
        self.intervals: list[tuple[float, float]] = []
        # The study's rulers and edited axes; their changes are undo steps here too.
        self.annotations: AnnotationStore | None = None
        self._listeners: list[Listener] = []
        self._stroke: BrushStroke | None = None
        self._waiting = False  # an added segment's group waits for the first stroke

    # -- notifications ---------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(region)`` after every change (``None``: only the table changed)."""
        self._listeners.append(listener)

    def _notify(self, region: Region | None) -> None:
        for listener in self._listeners:
            listener(region)

    def _require_label(self) -> int:
        if self.active_label is None:
            raise ValueError("no active segment: add a segment first")
        return self.active_label

    # -- brush strokes -----------------------------------------------------------------------
    @property
    def stroking(self) -> bool:
        """Whether a stroke is in progress (between press and release)."""
        return self._stroke is not None

    def begin_stroke(self, point_ijk: Sequence[float], *, erase: bool = False,
                     settings: BrushSettings | None = None) -> list[Region]:
        """Mouse press: start a brush (or eraser) stroke at a continuous ``(i, j, k)`` point."""
        if self._stroke is not None:
            self.end_stroke()
        self._stroke = BrushStroke(self.segmentation.labelmap, spacing_kji(
            self.segmentation.geometry), settings or self.brush, self._require_label(),
            erase=erase, image=self.image)
        return self.continue_stroke(point_ijk)

    def continue_stroke(self, point_ijk: Sequence[float]) -> list[Region]:
        """Mouse move: stamp along the segment from the last point; returns the changed boxes."""
        if self._stroke is None:
            return []
        regions = self._stroke.move_to(point_ijk)
        if regions:
            union: Region | None = None
            for r in regions:
                union = region_union(union, r)
            self._notify(union)
        return regions

    def end_stroke(self) -> Edit | None:
        """Mouse release: commit the stroke as one undo step (``None`` if it changed nothing)."""
        stroke, self._stroke = self._stroke, None
        if stroke is None:
            return None
        edit = stroke.finish()
        if edit is None:
            return None
        edit = self._record(edit)
        if self._waiting:  # the new segment and its first stroke: one step
            self._waiting = False
            return self.history.close_group(self.segmentation, f"Add segment + {edit.name}")
        return edit

    def cancel_stroke(self) -> None:
        """Escape during a stroke: undo its stamps and forget it."""
        stroke, self._stroke = self._stroke, None
        if stroke is not None:
            region = stroke.cancel()
            if region is not None:
                self._notify(region)

    # -- one-shot tools ----------------------------------------------------------------------
    def apply(self, change: Change) -> Edit | None:
        """Commit a tool's :class:`Change` as one undo step; ``None`` if nothing changed."""
        if self._stroke is not None:
            self.end_stroke()
        self.end_waiting()
        return self._apply(change)

    def _apply(self, change: Change) -> Edit | None:
        seg = self.segmentation
        old = None if change.region is None else seg.labelmap[change.region].copy()
        before = tuple(seg.segments)
        after = None if change.segments is None else tuple(change.segments)
        edit = Edit.from_arrays(change.name, change.region, old, change.new,
                                table_before=before if after is not None else None,
                                table_after=after)
        if edit is None:
            return None
        edit.apply(seg)
        return self._record(edit)

    def _record(self, edit: Edit) -> Edit:
        edit = self._mark_corrected(edit)
        self.history.push(edit)
        if self.journal is not None:
            self.journal.append(edit)
        self.intervals.append((edit.timestamp - edit.duration, edit.timestamp))
        self._notify(edit.region)
        if edit.table_after is not None:
            self._notify(None)
        return edit

    def _mark_corrected(self, edit: Edit) -> Edit:
        """The rows of the segments an edit touched follow it, in the same undo step: an AI
        segment becomes SEMIAUTOMATIC, a draft in progress (:mod:`.review`)."""
        seg = self.segmentation
        if edit.region is None or not may_follow_edits(seg.segments):
            return edit
        touched = set(np.unique(edit.values("old")).tolist())
        touched |= set(np.unique(edit.values("new")).tolist())
        table = after_voxel_edit(seg.segments, touched)
        if table == seg.segments:
            return edit
        before = edit.table_before if edit.table_before is not None else tuple(seg.segments)
        seg.segments[:] = table
        return dataclasses.replace(edit, table_before=before, table_after=tuple(table))

    @contextmanager
    def group(self, name: str) -> Iterator[None]:
        """Commit every edit made inside the ``with`` block as one undo step ``name``.

        Each edit is still journaled and announced to the listeners as it happens (the journal
        replays writes, so the merged step needs no record of its own); the edits the block's
        calls return are those parts, and the history holds their merge. Nested groups join
        the outer one; an exception records what was done, then propagates
        (:meth:`History.group` says why).
        """
        if self._stroke is not None:
            self.end_stroke()
        self.end_waiting()
        with self.history.group(name, self.segmentation):
            yield

    def end_waiting(self) -> Edit | None:
        """Close the group an :meth:`add_segment` opened for the first stroke, which did not
        come (another tool ran, undo, or the session ends): the segment's addition is then a
        step of its own, returned."""
        if not self._waiting:
            return None
        self._waiting = False
        return self.history.close_group(self.segmentation)

    # -- undo / redo -------------------------------------------------------------------------
    def undo(self) -> Edit | None:
        """Ctrl+Z: revert the last step; returns it (its ``region`` needs redrawing)."""
        if self._stroke is not None:
            self.end_stroke()
        self.end_waiting()
        edit = self.history.undo(self.segmentation)
        if edit is not None:
            self._after_history(edit, undo=True)
        return edit

    def redo(self) -> Edit | None:
        """Ctrl+Y: re-apply the last undone step."""
        self.end_waiting()
        edit = self.history.redo(self.segmentation)
        if edit is not None:
            self._after_history(edit, undo=False)
        return edit

    def _after_history(self, edit: Edit, *, undo: bool) -> None:
        notes = edit.notes_before if undo else edit.notes_after
        if notes is not None and self.annotations is not None:
            self.annotations.replace(notes)
        if edit.region is None and edit.table_after is None:
            return  # annotations only: their own file keeps them, and no voxel changed
        if self.journal is not None:
            self.journal.append(edit, undo=undo)
        now = time.time()
        self.intervals.append((now, now))
        self._fix_active_label()
        self._notify(edit.region)
        if edit.table_after is not None:
            self._notify(None)

    def _fix_active_label(self) -> None:
        labels = [s.label for s in self.segmentation.segments]
        if self.active_label not in labels:
            self.active_label = labels[0] if labels else None

    # -- measurement annotations ---------------------------------------------------------------
    def change_annotations(self, name: str, notes: Annotations) -> Edit | None:
        """Make ``notes`` the study's annotations as one undo step ``name`` ("Add ruler").

        The store writes them to the study's file; the step keeps the annotations before and
        after, so undo and redo put them back. It is not journaled and not editing time: no
        voxel changed, and the file already holds the result.
        """
        store = self.annotations
        if store is None:
            raise ValueError("no annotation store: the editor does not know the study")
        before = store.notes
        if notes == before:
            return None
        store.replace(notes)
        edit = Edit(name, None, str(self.segmentation.labelmap.dtype), notes_before=before,
                    notes_after=notes)
        self.history.push(edit)
        return edit

    # -- segment table -----------------------------------------------------------------------
    def add_segment(self, name: str = "", color: tuple[int, int, int] | None = None, *,
                    with_first_stroke: bool = False) -> Segment:
        """Add an empty segment and make it active.

        With ``with_first_stroke`` the addition and the next brush stroke are one undo step
        (a history group stays open until that stroke ends, :meth:`end_waiting`): one Ctrl+Z
        takes back the segment the user added to paint, with its paint. Any other edit, an
        undo or a redo first closes the group, leaving the addition a step of its own.
        """
        if self._stroke is not None:
            self.end_stroke()
        self.end_waiting()
        change, row = add_segment(self.segmentation, name, color=color)
        self._waiting = with_first_stroke and self.history.open_group("Add segment")
        self._apply(change)
        self.active_label = row.label
        return row

    def delete_segment(self, label: int) -> Edit | None:
        """Delete a segment and its voxels (one undo step)."""
        edit = self.apply(delete_segment(self.segmentation, label))
        self._fix_active_label()
        return edit

    # -- effort and shutdown -----------------------------------------------------------------
    def effort(self, label: int | None = None) -> Effort:
        """Voxels added/removed versus the draft, Dice, active editing time so far."""
        current = self.segmentation.labelmap
        draft = self.draft if self.draft is not None else np.zeros_like(current)
        return correction_effort(draft, current, self.segmentation.geometry.spacing,
                                 label=label, intervals=self.intervals)

    def close(self) -> None:
        """End the session cleanly: finish a stroke, flush and close the journal."""
        if self._stroke is not None:
            self.end_stroke()
        self.end_waiting()
        if self.journal is not None:
            self.journal.close(clean=True)
            self.journal = None
