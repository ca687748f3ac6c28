"""Qt-free editing package (see ARCHITECTURE.md): brush, fill, scissors, interpolation, islands,
smoothing, margins, segment table, undo history as data, crash journal, correction effort.

The viewer talks to :class:`SegmentEditor`; every other tool is a plain function returning a
:class:`Change` that ``SegmentEditor.apply`` commits as one undo step.
"""

from medseg_gui.editing.base import Change, Region, ViewAxis
from medseg_gui.editing.brush import BrushSettings, BrushShape
from medseg_gui.editing.constraints import HU_PRESETS, MaskMode, Overwrite, PaintConstraint
from medseg_gui.editing.editor import SegmentEditor
from medseg_gui.editing.history import Edit, History
from medseg_gui.editing.journal import Journal, recover, unfinished_sessions

__all__ = [
    "HU_PRESETS",
    "BrushSettings",
    "BrushShape",
    "Change",
    "Edit",
    "History",
    "Journal",
    "MaskMode",
    "Overwrite",
    "PaintConstraint",
    "Region",
    "SegmentEditor",
    "ViewAxis",
    "recover",
    "unfinished_sessions",
]
