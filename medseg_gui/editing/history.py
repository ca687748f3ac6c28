"""Undo history as data: each edit is a box, a mask of the voxels it changed, old and new values.

An :class:`Edit` keeps only what changed, compressed: the box is shrunk to the changed voxels, the
changed-voxel mask is bit-packed and deflated, and the old and new values of the changed voxels
alone are deflated. A brush stroke therefore costs a few kB however large its box, and hundreds
of strokes fit in a few MB. One stroke or one tool application is one edit;
:class:`StrokeRecorder` accumulates the stamps of a stroke into one, and :meth:`History.group`
merges several edits of one user action into one (napari's ``block_history``).

:class:`History` is capped by the bytes it stores (256 MB by default), never by a small count:
the oldest edits are dropped first, but never below :data:`MIN_STEPS` undo steps (ITK-SNAP
keeps at least 4), so a few edits that each pass the cap cannot leave the user
a single undo. Beyond the floor the cap holds; within it each step may be as large as the
edit needs, so the worst case is ``max(max_bytes, MIN_STEPS * (N / 8 + 2 * N * itemsize))``
bytes for a label map of ``N`` voxels whose every voxel changes from one incompressible value
to another in every step: 4 x 53 MiB = 212 MiB for a 512 x 512 x 100 uint8 map (50 MiB a step
measured), 638 MiB at 300 slices (150 MiB a step measured: 601 MiB held where one step was
kept before). Real large edits (one label over a smooth region) deflate to well under 1 MiB a
step, so the floor costs nothing there (``benchmarks/bench_undo_floor.py --slices 300``).
"""

from __future__ import annotations

import dataclasses
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medseg_gui.core.annotations import Annotations
from medseg_gui.core.segmentation import Segment, Segmentation
from medseg_gui.editing.base import BoolArray, LabelArray, Region, mask_bbox, region_union

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
MIN_STEPS = 4  # undo steps kept whatever their size (ITK-SNAP's floor)
_OVERHEAD = 256  # bytes counted per edit for the Python objects around the arrays


def pack_mask(mask: BoolArray) -> bytes:
    """A boolean array as deflated bits (C order)."""
    return zlib.compress(np.packbits(mask.ravel()).tobytes(), 1)


def unpack_mask(data: bytes, shape: tuple[int, ...]) -> BoolArray:
    """The inverse of :func:`pack_mask`."""
    n = int(np.prod(shape))
    bits = np.unpackbits(np.frombuffer(zlib.decompress(data), dtype=np.uint8), count=n)
    return bits.view(np.bool_).reshape(shape)


@dataclass(frozen=True)
class Edit:
    """One undoable step, stored as the changed voxels of a box.

    Parameters
    ----------
    name
        Shown in the Undo menu.
    region
        The box (array order) that holds every changed voxel, or ``None`` for table-only edits.
    dtype
        The label map's dtype (``"uint8"`` or ``"uint16"``).
    mask_z, old_z, new_z
        Deflated bit-packed changed-voxel mask of the box, and the deflated old / new values of
        the changed voxels in C order.
    table_before, table_after
        The segment table before and after, or ``None`` when the edit left it alone.
    timestamp, duration
        When the edit was committed (``time.time()``) and how long it took the user (a stroke's
        press-to-release time, 0 for one-click tools), for the correction-effort record.
    notes_before, notes_after
        The study's measurement annotations (rulers, edited RECIST axes) before and after, or
        ``None`` when the edit left them alone; the editor puts them back on undo and redo
        (:meth:`medseg_gui.editing.editor.SegmentEditor.change_annotations`).
    """

    name: str
    region: Region | None
    dtype: str
    mask_z: bytes = b""
    old_z: bytes = b""
    new_z: bytes = b""
    n_changed: int = 0
    table_before: tuple[Segment, ...] | None = None
    table_after: tuple[Segment, ...] | None = None
    timestamp: float = field(default_factory=time.time)
    duration: float = 0.0
    notes_before: Annotations | None = None
    notes_after: Annotations | None = None

    @staticmethod
    def from_arrays(name: str, region: Region | None, old: LabelArray | None,
                    new: LabelArray | None, *, table_before: tuple[Segment, ...] | None = None,
                    table_after: tuple[Segment, ...] | None = None,
                    duration: float = 0.0) -> Edit | None:
        """The edit turning ``old`` into ``new`` inside ``region``; ``None`` if nothing changes."""
        if table_before == table_after:
            table_before = table_after = None
        dtype = str(old.dtype) if old is not None else "uint8"
        if region is None or old is None or new is None:
            if table_after is None:
                return None
            return Edit(name, None, dtype, table_before=table_before, table_after=table_after,
                        duration=duration)
        changed = old != new
        tight = mask_bbox(changed)
        if tight is None:
            if table_after is None:
                return None
            return Edit(name, None, dtype, table_before=table_before, table_after=table_after,
                        duration=duration)
        changed, old, new = changed[tight], old[tight], new[tight]
        absolute = tuple(slice(r.start + t.start, r.start + t.stop)
                         for r, t in zip(region, tight, strict=True))
        return Edit(
            name, (absolute[0], absolute[1], absolute[2]), dtype,
            pack_mask(changed), zlib.compress(old[changed].tobytes(), 1),
            zlib.compress(new[changed].tobytes(), 1), int(changed.sum()),
            table_before, table_after, duration=duration,
        )

    @property
    def nbytes(self) -> int:
        """Bytes this edit keeps in memory (compressed arrays plus a fixed overhead)."""
        return len(self.mask_z) + len(self.old_z) + len(self.new_z) + _OVERHEAD

    def changed_mask(self) -> BoolArray:
        """The changed voxels of :attr:`region` as a boolean array."""
        if self.region is None:
            return np.zeros((0, 0, 0), dtype=np.bool_)
        shape = tuple(s.stop - s.start for s in self.region)
        return unpack_mask(self.mask_z, shape)

    def values(self, which: str) -> LabelArray:
        """The ``"old"`` or ``"new"`` values of the changed voxels."""
        data = self.old_z if which == "old" else self.new_z
        out: LabelArray = np.frombuffer(zlib.decompress(data), dtype=np.dtype(self.dtype))
        return out

    def _write(self, seg: Segmentation, which: str) -> None:
        if self.region is not None:
            seg.labelmap[self.region][self.changed_mask()] = self.values(which)
        table = self.table_before if which == "old" else self.table_after
        if table is not None:
            seg.segments[:] = list(table)

    def apply(self, seg: Segmentation) -> None:
        """Write the new values (redo)."""
        self._write(seg, "new")

    def revert(self, seg: Segmentation) -> None:
        """Write the old values back (undo)."""
        self._write(seg, "old")


class History:
    """Undo/redo stacks of :class:`Edit`, bounded by the bytes they hold.

    Parameters
    ----------
    max_bytes
        Memory cap of both stacks together; the oldest undo steps are dropped first while the
        cap is exceeded, but never below ``min_steps`` of them (see the module docstring for
        the worst case this allows).
    min_steps
        Undo steps kept whatever their size.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, min_steps: int = MIN_STEPS) -> None:
        self.max_bytes = int(max_bytes)
        self.min_steps = max(1, int(min_steps))
        self._undo: list[Edit] = []
        self._redo: list[Edit] = []
        self._bytes = 0
        self.evicted = 0
        self._group: list[Edit] | None = None  # the edits of the open group, oldest first
        self._group_name = ""

    @property
    def nbytes(self) -> int:
        """Bytes held by all stored edits (those of an open group included)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._undo)

    def can_undo(self) -> bool:
        return bool(self._undo or self._group)

    def can_redo(self) -> bool:
        return bool(self._redo) and not self._group

    def undo_name(self) -> str | None:
        """Name of the step an undo would revert (for "Undo <name>"): an open group's with
        edits, which its owner closes before undoing (:meth:`SegmentEditor.undo`)."""
        if self._group:
            return self._group_name
        return self._undo[-1].name if self._undo else None

    def redo_name(self) -> str | None:
        """Name of the step :meth:`redo` would re-apply; none while an open group holds edits
        (closing it clears the redo stack)."""
        return self._redo[-1].name if self._redo and not self._group else None

    @property
    def grouping(self) -> bool:
        """Whether a :meth:`group` is open (its edits are not undo steps yet)."""
        return self._group is not None

    def push(self, edit: Edit) -> None:
        """Record an edit already written to the label map; clears the redo stack.

        Inside a :meth:`group` the edit waits for the group's end, where it becomes part of
        one step; it is never evicted meanwhile, since the merge needs its old values.
        """
        if self._group is not None:
            self._group.append(edit)
            self._bytes += edit.nbytes
            return
        self._bytes -= sum(e.nbytes for e in self._redo)
        self._redo.clear()
        self._undo.append(edit)
        self._bytes += edit.nbytes
        self._evict()

    def _evict(self) -> None:
        # Only push evicts, and push has just emptied the redo stack: undo steps alone go.
        while self._bytes > self.max_bytes and len(self._undo) > self.min_steps:
            victim = self._undo.pop(0)
            self._bytes -= victim.nbytes
            self.evicted += 1

    @contextmanager
    def group(self, name: str, seg: Segmentation) -> Iterator[None]:
        """Merge the edits pushed inside the ``with`` block into one undo step ``name``.

        Parameters
        ----------
        name
            The step's name in the Undo menu.
        seg
            The segmentation the edits were written to (read at the end, for the merge).

        Notes
        -----
        A nested group joins the outer one (its name is dropped), as napari's
        ``block_history`` does. An exception inside the group still records what was done as
        the one step, then propagates: those voxels are on screen and in the crash journal
        already, and a step the user can undo with one Ctrl+Z keeps the label map and the
        history in agreement, where a rollback would have to write and journal the old
        values again on a path that is already failing. Undo and redo are refused while a
        group is open (the group's edits lie above every undo step).
        """
        if self._group is not None:
            yield
            return
        self.open_group(name)
        try:
            yield
        finally:
            self.close_group(seg)

    def open_group(self, name: str) -> bool:
        """Start a group that :meth:`close_group` ends: the edits pushed until then become one
        undo step ``name``. For a group spanning several events (a mouse press to its
        release), where a ``with`` block cannot. Returns False (and changes nothing) when a
        group is already open: the caller's edits join that one."""
        if self._group is not None:
            return False
        self._group, self._group_name = [], name
        return True

    def close_group(self, seg: Segmentation, name: str | None = None) -> Edit | None:
        """End the open group: its edits, merged, become one undo step (``name``, or the name
        it was opened with); returns that step, ``None`` if it changed nothing."""
        if self._group is None:
            return None
        edits, self._group = self._group, None
        self._bytes -= sum(e.nbytes for e in edits)
        merged = merge_edits(name or self._group_name, edits, seg)
        if merged is not None:
            self.push(merged)
        return merged

    def _refuse_in_group(self) -> None:
        if self._group is not None:
            raise RuntimeError("undo or redo inside an open undo group")

    def undo(self, seg: Segmentation) -> Edit | None:
        """Revert the newest edit in ``seg``; returns it (for the changed region), or ``None``."""
        self._refuse_in_group()
        if not self._undo:
            return None
        edit = self._undo.pop()
        edit.revert(seg)
        self._redo.append(edit)
        return edit

    def redo(self, seg: Segmentation) -> Edit | None:
        """Re-apply the last undone edit; returns it, or ``None``."""
        self._refuse_in_group()
        if not self._redo:
            return None
        edit = self._redo.pop()
        edit.apply(seg)
        self._undo.append(edit)
        return edit

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()
        self._bytes = 0


def merge_edits(name: str, edits: list[Edit], seg: Segmentation) -> Edit | None:
    """One edit ``name`` equal to ``edits`` (oldest first, all already written to ``seg``).

    The new values are read from ``seg``; the old ones are rebuilt by reverting the edits,
    newest first, in a copy of the union box (a voxel several edits changed gets the value
    from before the first). ``None`` when together they changed nothing.
    """
    if not edits:
        return None
    if len(edits) == 1:
        return dataclasses.replace(edits[0], name=name)
    box: Region | None = None
    for e in edits:
        box = region_union(box, e.region)
    old = new = None
    if box is not None:
        new = seg.labelmap[box].copy()
        old = new.copy()
        for e in reversed(edits):
            if e.region is not None:
                rel = tuple(slice(r.start - b.start, r.stop - b.start)
                            for r, b in zip(e.region, box, strict=True))
                old[rel][e.changed_mask()] = e.values("old")
    before = next((e.table_before for e in edits if e.table_before is not None), None)
    after = None if before is None else tuple(seg.segments)
    started = edits[0].timestamp - edits[0].duration
    merged = Edit.from_arrays(name, box, old, new, table_before=before, table_after=after,
                              duration=time.time() - started)
    notes = [e for e in edits if e.notes_after is not None]
    if notes:  # the annotations before the first change of them and after the last
        merged = dataclasses.replace(
            merged or Edit(name, None, edits[0].dtype, duration=time.time() - started),
            notes_before=notes[0].notes_before, notes_after=notes[-1].notes_after)
    return merged


class StrokeRecorder:
    """Collects the old values under each stamp of a stroke, so the stroke commits as one edit.

    Call :meth:`save` with each stamp's box *before* writing into it; :meth:`commit` rebuilds the
    original values of the union box (later saves of an overlapping box are overwritten by earlier
    ones, which hold the true originals) and returns the one :class:`Edit`.
    """

    def __init__(self, labelmap: LabelArray, name: str = "Paint") -> None:
        self.labelmap = labelmap
        self.name = name
        self.started = time.time()
        self.region: Region | None = None
        self._saved: list[tuple[Region, LabelArray]] = []

    def save(self, region: Region) -> None:
        """Remember the current values of ``region`` before a stamp changes them."""
        self._saved.append((region, self.labelmap[region].copy()))
        self.region = region_union(self.region, region)

    def _original(self) -> LabelArray | None:
        if self.region is None:
            return None
        box = self.region
        old: LabelArray = self.labelmap[box].copy()
        for reg, block in reversed(self._saved):
            rel = tuple(slice(r.start - b.start, r.stop - b.start)
                        for r, b in zip(reg, box, strict=True))
            old[rel] = block
        return old

    def commit(self) -> Edit | None:
        """The stroke as one edit (``None`` if it changed nothing); the recorder is then spent."""
        old = self._original()
        box = self.region
        new = None if box is None else self.labelmap[box].copy()
        edit = Edit.from_arrays(self.name, box, old, new,
                                duration=time.time() - self.started)
        self._saved.clear()
        return edit

    def cancel(self) -> Region | None:
        """Put back the values the stroke overwrote (Escape during a stroke); returns the box."""
        old, box = self._original(), self.region
        if box is not None and old is not None:
            self.labelmap[box] = old
        self._saved.clear()
        self.region = None
        return box


def describe(edit: Edit) -> dict[str, Any]:
    """JSON-ready summary of an edit (for logs and the effort record)."""
    reg = None if edit.region is None else [[s.start, s.stop] for s in edit.region]
    return {"name": edit.name, "region": reg, "changed": edit.n_changed, "bytes": edit.nbytes,
            "timestamp": edit.timestamp, "duration": edit.duration}
