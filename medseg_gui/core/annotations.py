"""A study's measurement annotations: rulers, and RECIST axes a reader moved by hand.

Both are lines between two LPS points (mm). A :class:`Ruler` measures whatever the reader drew it
on; an :class:`AxisEdit` replaces the long or short RECIST axis that
:mod:`medseg_gui.core.measurements` computed for one segment, and :func:`effective_recist` gives
the axes the table, the report and the SR show: the edited ones where there are, marked as
edited, the computed ones elsewhere. Removing an edit is the way back to the computed axis.

:class:`Annotations` is immutable: every change makes a new one, so an undo step can keep the
one before and the one after (:mod:`medseg_gui.editing.annotations`).

Where they are kept
    One JSON file per study in ``data_dir()/annotations/`` (:func:`annotations_file`), named
    after the series instance UID (a study opened from an image file: a hash of its path), and
    rewritten atomically after every change. Rulers and axes belong to the study, not to one
    editing session: they are there again when the study is reopened, whichever mask is shown,
    and a crash loses nothing, since each change is on disk before the next.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from medseg_gui.core.atomic import write_bytes
from medseg_gui.core.measurements import Axis, Recist
from medseg_gui.core.paths import data_dir
from medseg_gui.core.review import current_user, now_utc
from medseg_gui.core.volume import Volume

Point = tuple[float, float, float]
FORMAT = "medseg-annotations"


def as_point(values: Any) -> Point:
    """Three numbers as an LPS point of floats."""
    x, y, z = (float(v) for v in values)
    return (x, y, z)


def distance_mm(a: Point, b: Point) -> float:
    """Length of the line between two LPS points."""
    return float(np.linalg.norm(np.subtract(b, a)))


@dataclass(frozen=True)
class Ruler:
    """A distance the reader measured: two LPS points, who drew it and when."""

    id: str
    start: Point
    end: Point
    by: str = ""
    at: str = ""

    @staticmethod
    def new(start: Point, end: Point) -> Ruler:
        """A ruler drawn now by the current user, with a fresh id."""
        return Ruler(secrets.token_hex(4), as_point(start), as_point(end), current_user(),
                     now_utc())

    @property
    def length_mm(self) -> float:
        return distance_mm(self.start, self.end)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "start_lps_mm": list(self.start), "end_lps_mm": list(self.end),
                "length_mm": self.length_mm, "by": self.by, "at": self.at}

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Ruler:
        return Ruler(str(d["id"]), as_point(d["start_lps_mm"]), as_point(d["end_lps_mm"]),
                     str(d.get("by", "")), str(d.get("at", "")))


class AxisName(StrEnum):
    """Which RECIST axis."""

    LONG = "long"
    SHORT = "short"


@dataclass(frozen=True)
class AxisEdit:
    """A RECIST axis of segment ``label`` moved by hand: it replaces the computed one."""

    label: int
    axis: AxisName
    start: Point
    end: Point
    by: str = ""
    at: str = ""

    @property
    def length_mm(self) -> float:
        return distance_mm(self.start, self.end)

    def as_axis(self) -> Axis:
        return Axis(self.start, self.end, self.length_mm)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "axis": self.axis.value, "start_lps_mm": list(self.start),
                "end_lps_mm": list(self.end), "length_mm": self.length_mm, "by": self.by,
                "at": self.at}

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> AxisEdit:
        return AxisEdit(int(d["label"]), AxisName(str(d["axis"])), as_point(d["start_lps_mm"]),
                        as_point(d["end_lps_mm"]), str(d.get("by", "")), str(d.get("at", "")))


@dataclass(frozen=True)
class Annotations:
    """The rulers and edited axes of one study (immutable; each change returns a new one)."""

    rulers: tuple[Ruler, ...] = ()
    axes: tuple[AxisEdit, ...] = ()

    def ruler(self, ruler_id: str) -> Ruler | None:
        return next((r for r in self.rulers if r.id == ruler_id), None)

    def with_ruler(self, ruler: Ruler) -> Annotations:
        """``ruler`` added, or put in place of the one with its id."""
        if self.ruler(ruler.id) is None:
            return replace(self, rulers=(*self.rulers, ruler))
        return replace(self, rulers=tuple(ruler if r.id == ruler.id else r for r in self.rulers))

    def without_ruler(self, ruler_id: str) -> Annotations:
        return replace(self, rulers=tuple(r for r in self.rulers if r.id != ruler_id))

    def axis(self, label: int, axis: AxisName) -> AxisEdit | None:
        return next((a for a in self.axes if (a.label, a.axis) == (label, axis)), None)

    def with_axis(self, edit: AxisEdit) -> Annotations:
        """``edit`` in place of any earlier edit of the same segment's axis."""
        rest = tuple(a for a in self.axes if (a.label, a.axis) != (edit.label, edit.axis))
        return replace(self, axes=(*rest, edit))

    def without_axes(self, label: int, axis: AxisName | None = None) -> Annotations:
        """The computed axis back (both axes of ``label`` when ``axis`` is ``None``)."""
        return replace(self, axes=tuple(a for a in self.axes if a.label != label or (
            axis is not None and a.axis != axis)))

    def to_dict(self) -> dict[str, Any]:
        return {"rulers": [r.to_dict() for r in self.rulers],
                "axes": [a.to_dict() for a in self.axes]}

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Annotations:
        return Annotations(tuple(Ruler.from_dict(r) for r in d.get("rulers", [])),
                           tuple(AxisEdit.from_dict(a) for a in d.get("axes", [])))


@dataclass(frozen=True)
class ReadAxes:
    """The RECIST axes of one segment as shown and reported.

    ``long``/``short`` are the edited axes where there are edits (``long_edit``/``short_edit``),
    else the computed ones (``computed``, which may be ``None`` for an empty segment).
    """

    label: int
    computed: Recist | None
    long: Axis | None
    short: Axis | None
    long_edit: AxisEdit | None = None
    short_edit: AxisEdit | None = None

    @property
    def edited(self) -> bool:
        return self.long_edit is not None or self.short_edit is not None


def effective_recist(label: int, computed: Recist | None, notes: Annotations) -> ReadAxes:
    """Segment ``label``'s axes: its edits in ``notes`` over the ``computed`` ones."""
    long_edit, short_edit = notes.axis(label, AxisName.LONG), notes.axis(label, AxisName.SHORT)
    long = long_edit.as_axis() if long_edit else (computed.long if computed else None)
    short = short_edit.as_axis() if short_edit else (computed.short if computed else None)
    return ReadAxes(label, computed, long, short, long_edit, short_edit)


def edited_axis(label: int, axis: AxisName, start: Point, end: Point) -> AxisEdit:
    """An axis edit made now by the current user."""
    return AxisEdit(label, axis, as_point(start), as_point(end), current_user(), now_utc())


# -- files --------------------------------------------------------------------------------------
def study_key(volume: Volume) -> str | None:
    """What names a study's annotation file: its series UID, or a hash of its source path;
    ``None`` for a volume made in memory (no file to come back to)."""
    if volume.info.series_uid:
        return re.sub(r"[^0-9A-Za-z.]", "_", volume.info.series_uid)
    if not volume.source:
        return None
    source = str(Path(volume.source).resolve())
    return "file-" + hashlib.sha256(source.encode()).hexdigest()[:24]


def annotations_file(volume: Volume) -> Path | None:
    """``data_dir()/annotations/<study key>.json``; ``None`` for a volume made in memory."""
    key = study_key(volume)
    return None if key is None else data_dir() / "annotations" / f"{key}.json"


def load_annotations(path: str | Path) -> Annotations:
    """The annotations in ``path``; none when the file does not exist.

    Raises
    ------
    ValueError
        The file is not an annotations file or cannot be parsed (the message names it).
    """
    p = Path(path)
    if not p.is_file():
        return Annotations()
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
        if doc.get("format") != FORMAT:
            raise ValueError(f"format is {doc.get('format')!r}, not {FORMAT!r}")
        return Annotations.from_dict(doc)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{p}: not a readable annotations file ({exc})") from exc


def save_annotations(notes: Annotations, path: str | Path, volume: Volume | None = None) -> Path:
    """Write ``notes`` to ``path`` atomically (the study's UIDs recorded when given)."""
    info = volume.info if volume is not None else None
    doc = {"format": FORMAT, "version": 1,
           "series_uid": info.series_uid if info else "",
           "frame_of_reference_uid": info.frame_of_reference_uid if info else "",
           **notes.to_dict()}
    return write_bytes(path, json.dumps(doc, indent=2).encode())
