"""Segment statistics: a dock beside the Segments list.

One row per segment: volume, voxel count, longest 3D diameter, RECIST long and short axes,
mean / min / max HU, the model that drafted it and the correction effort versus the session's
start. The figures are :func:`medseg_gui.core.measurements.measure_all`'s, computed on the
thread pool from a copy of the label map (so brush strokes never wait for them) once a session
starts and again :data:`REFRESH_MS` after the last edit. A RECIST axis moved with the Ruler tool
(:mod:`medseg_gui.ui.measure_tool`) replaces the computed one here, marked with a pencil and
named in the "RECIST edited" column; "Reset axes" puts the selected segment's computed axes
back. "Copy as CSV" puts the table's figures on the clipboard; a double click on a row moves the
crosshair to that segment's RECIST slice. View > Show RECIST axes (or the dock's button) draws
the axes in the slice views.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from medseg_gui.core.annotations import Annotations, ReadAxes, effective_recist
from medseg_gui.core.measurements import SegmentMeasurements, measure_all
from medseg_gui.core.progress import Progress
from medseg_gui.core.segmentation import Segment, Segmentation
from medseg_gui.core.volume import Volume
from medseg_gui.editing.effort import Effort, correction_effort
from medseg_gui.ui.viewer_setup import find_menu
from medseg_gui.ui.workers import Task

if TYPE_CHECKING:
    from medseg_gui.ui.workstation import Workstation

REFRESH_MS = 800  # after the last edit: a stroke's many commits cost one measurement
COLUMNS = ["Segment", "Volume (mL)", "Voxels", "3D diameter (mm)", "RECIST long (mm)",
           "RECIST short (mm)", "Mean HU", "Min HU", "Max HU", "Model", "Correction",
           "RECIST edited"]
# The table's headers are short (the dock is narrow); the CSV and the tooltips say it in full.
HEADERS = ["Segment", "mL", "Voxels", "3D \u2300", "Long", "Short", "Mean", "Min", "Max",
           "Model", "Correction", "Edited"]
LONG_COL, SHORT_COL = COLUMNS.index("RECIST long (mm)"), COLUMNS.index("RECIST short (mm)")
PENCIL = "\u270e"


@dataclass(frozen=True)
class StatsRow:
    """One segment's row: its table entry, its measurements, its correction effort."""

    segment: Segment
    measured: SegmentMeasurements
    effort: Effort | None

    def axes(self, notes: Annotations) -> ReadAxes:
        """The row's RECIST axes with the study's edits over the computed ones."""
        return effective_recist(self.segment.label, self.measured.recist, notes)

    def cells(self, notes: Annotations | None = None) -> list[str]:
        """The row's cells as the table and the CSV show them (2 decimals, '' when none), the
        RECIST axes edited in ``notes`` replacing the computed ones."""
        m = self.measured

        def mm(value: float | None) -> str:
            return "" if value is None else f"{value:.2f}"

        axes = self.axes(notes or Annotations())
        edited = ", ".join(name for name, e in (("long", axes.long_edit),
                                                ("short", axes.short_edit)) if e)
        effort = "" if self.effort is None else \
            f"+{self.effort.voxels_added} / -{self.effort.voxels_removed} voxels"
        return [self.segment.name, f"{m.volume_ml:.2f}", str(m.voxels),
                mm(m.diameter.length_mm if m.diameter else None),
                mm(axes.long.length_mm if axes.long else None),
                mm(axes.short.length_mm if axes.short else None),
                mm(m.mean), mm(m.minimum), mm(m.maximum), self.segment.model, effort, edited]


def measure_rows(seg: Segmentation, volume: Volume | None, draft: np.ndarray | None,
                 intervals: list[tuple[float, float]], progress: Progress) -> list[StatsRow]:
    """The rows of ``seg`` (a snapshot); effort per segment versus ``draft`` when given."""
    image = volume if volume is not None and volume.geometry.same_grid(seg.geometry, 1e-3) \
        else None
    measured = measure_all(seg, image, progress)
    return [StatsRow(s, m, None if draft is None else correction_effort(
        draft, seg.labelmap, seg.geometry.spacing, label=s.label, intervals=intervals))
        for s, m in zip(seg.segments, measured, strict=True)]


def rows_csv(rows: list[StatsRow], notes: Annotations | None = None) -> str:
    """The table as CSV: a header line, then one line per segment."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(row.cells(notes))
    return buf.getvalue()


class SegmentStats(QObject):
    """The statistics dock and its refresh.

    Signals
    -------
    measured()
        New figures are shown.
    """

    measured = Signal()

    def __init__(self, window: Workstation) -> None:
        super().__init__(window)
        self.window = window
        self.controller = window.editing
        self.rows: list[StatsRow] = []
        self._task: Task | None = None
        self._stale = False  # an edit arrived while measuring: measure again when done
        self.dock = QDockWidget("Segment statistics", window)
        self.dock.setObjectName("SegmentStatsDock")
        body = QWidget()
        column = QVBoxLayout(body)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(HEADERS)
        for c, full in enumerate(COLUMNS):
            header_item = self.table.horizontalHeaderItem(c)
            if header_item is not None:
                header_item.setToolTip(full)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.cellDoubleClicked.connect(lambda r, _c: self.go_to_recist(r))
        self.table.itemSelectionChanged.connect(self._selection_changed)
        column.addWidget(self.table)
        buttons = QHBoxLayout()
        self.copy_button = QPushButton("Copy as CSV")
        self.copy_button.clicked.connect(self.copy_csv)
        self.reset_button = QPushButton("Reset axes")
        self.reset_button.setToolTip("Put the selected segment's computed RECIST axes back in "
                                     "place of the edited ones")
        self.reset_button.setEnabled(False)
        self.reset_button.clicked.connect(lambda: self.reset_axes(self.table.currentRow()))
        self.show_recist = QAction("Show &RECIST axes", window, checkable=True, checked=True)
        self.show_recist.setShortcut(QKeySequence("Ctrl+Shift+R"))
        self.show_recist.toggled.connect(self._show_lines)
        recist_button = QToolButton()
        recist_button.setDefaultAction(self.show_recist)
        self.status = QLabel("")
        for w in (self.copy_button, recist_button, self.reset_button, self.status):
            buttons.addWidget(w)
        buttons.addStretch(1)
        column.addLayout(buttons)
        self.dock.setWidget(body)
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        window.tabifyDockWidget(window.segment_panel, self.dock)
        window.segment_panel.raise_()
        find_menu(window, "View").addAction(self.show_recist)
        self.measure = self.controller.measure  # draws the axes, keeps their edits
        self.measure.follow_stats(self)
        self.measure.changed.connect(lambda: self._show(self.rows))
        self._timer = QTimer(self, singleShot=True, interval=REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        self.controller.sessionChanged.connect(self.refresh)
        self.controller.edited.connect(lambda *_: self._timer.start())
        self.controller.tableChanged.connect(self._timer.start)

    # -- measuring ---------------------------------------------------------------------------
    @property
    def measuring(self) -> bool:
        return self._task is not None

    def refresh(self) -> None:
        """Measure the current segmentation on the thread pool (again, if already running)."""
        self._timer.stop()
        if self._task is not None:
            self._stale = True
            return
        editor = self.controller.editor
        if editor is None:
            self._show([])
            return
        live = editor.segmentation
        snapshot = Segmentation(live.labelmap.copy(), live.geometry, list(live.segments))
        draft = editor.draft  # never written in place (edits change the live label map)
        volume, intervals = self.window.volume, list(editor.intervals)
        task = Task(lambda p: measure_rows(snapshot, volume, draft, intervals, p))
        task.signals.finished.connect(self._on_measured)
        task.signals.failed.connect(self._on_failed)
        self._task, self._stale = task, False
        self.status.setText("measuring...")
        QThreadPool.globalInstance().start(task)

    def _on_measured(self, task: Task, rows: list[StatsRow]) -> None:
        if task is not self._task:
            return
        self._task = None
        if self._stale:
            self.refresh()
            return
        self._show(rows)
        self.measured.emit()

    def _on_failed(self, task: Task, exc: BaseException) -> None:
        if task is self._task:
            self._task = None
            self.status.setText(f"not measured: {exc}")

    # -- showing -----------------------------------------------------------------------------
    def _show(self, rows: list[StatsRow]) -> None:
        self.rows = rows
        self.status.setText("")
        notes = self.measure.notes
        current = self.table.currentRow()
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            axes = row.axes(notes)
            for c, text in enumerate(row.cells(notes)):
                edit = axes.long_edit if c == LONG_COL else axes.short_edit if c == SHORT_COL \
                    else None
                item = QTableWidgetItem(f"{text} {PENCIL}" if edit else text)
                if edit is not None:
                    computed = axes.computed.long if c == LONG_COL and axes.computed else \
                        axes.computed.short if axes.computed else None
                    was = f"; computed {computed.length_mm:.2f} mm" if computed else ""
                    item.setToolTip(f"edited by {edit.by or 'unknown'}, "
                                    f"{edit.at[:16].replace('T', ' ')} UTC{was}")
                if c not in (0, COLUMNS.index("Model"), COLUMNS.index("Correction")):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()
        if 0 <= current < len(rows):
            self.table.selectRow(current)
        self._selection_changed()

    def _show_lines(self, visible: bool) -> None:
        self.measure.set_show_axes(visible)

    def _selection_changed(self) -> None:
        row = self.table.currentRow()
        self.reset_button.setEnabled(0 <= row < len(self.rows) and self.rows[row].axes(
            self.measure.notes).edited)

    def reset_axes(self, row: int) -> bool:
        """Put row ``row``'s computed RECIST axes back (one undo step)."""
        if not 0 <= row < len(self.rows):
            return False
        return self.measure.reset_axes(self.rows[row].segment.label)

    def copy_csv(self) -> str:
        """Put the table on the clipboard as CSV (and return it)."""
        text = rows_csv(self.rows, self.measure.notes)
        QGuiApplication.clipboard().setText(text)
        return text

    def go_to_recist(self, row: int) -> None:
        """Move the crosshair to the middle of row ``row``'s RECIST long axis."""
        axes = self.rows[row].axes(self.measure.notes) if 0 <= row < len(self.rows) else None
        if axes is not None and axes.long is not None:
            self.window.set_crosshair((np.asarray(axes.long.start)
                                       + np.asarray(axes.long.end)) / 2)


def install_segment_stats(window: Workstation) -> SegmentStats:
    """Add the Segment statistics dock (tabbed with Segments) and View > Show RECIST axes."""
    return SegmentStats(window)
