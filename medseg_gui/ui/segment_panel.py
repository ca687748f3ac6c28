"""The segment list (a dock): colour, name, volume in mL, visibility, lock, review status, and
the active segment.

Add, rename, delete, recolour and the review status (a box in each row's Status cell) go
through the :class:`SegmentEditor` (one undo step each).
Volumes are voxel counts kept up to date from each committed edit's changed voxels (old and
new values), so an edit costs a count of its own voxels, never a pass over the label map;
the full count runs once per session, on the thread pool. Visibility and the lock (no tool may
change a locked segment's voxels) are viewing state in the controller, not undo steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QSignalBlocker, Qt, QThreadPool, QTimer
from PySide6.QtGui import QColor, QFont, QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QColorDialog,
    QComboBox,
    QDockWidget,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medseg_gui.core.review import Review, ReviewStatus, status_text
from medseg_gui.editing import Edit
from medseg_gui.editing.review import set_status
from medseg_gui.editing.segments import recolor_segment, rename_segment
from medseg_gui.ui.editing_tools import DEBOUNCE_MS, EditingController
from medseg_gui.ui.workers import Task

if TYPE_CHECKING:
    from medseg_gui.ui.workstation import Workstation

# The lock and the status come last so that the columns before them keep their places.
VISIBLE, COLOR, NAME, VOLUME, LOCKED, STATUS = range(6)
STATUS_COLORS = {None: "#909090", ReviewStatus.DRAFT: "#b0b0b0",
                 ReviewStatus.IN_PROGRESS: "#e0b040", ReviewStatus.COMPLETED: "#50c060",
                 ReviewStatus.FLAGGED: "#e05050"}


def _check_item(checked: bool, tip: str) -> QTableWidgetItem:
    """A check-box cell (visibility, lock) the user may tick."""
    item = QTableWidgetItem()
    item.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled
                  | Qt.ItemFlag.ItemIsSelectable)
    item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
    item.setToolTip(tip)
    return item


class SegmentPanel(QDockWidget):
    """Rows of segments; the selected row is the active segment (the one painting)."""

    def __init__(self, window: Workstation, controller: EditingController) -> None:
        super().__init__("Segments", window)
        self.setObjectName("SegmentsDock")
        self.controller = controller
        self.counts: np.ndarray | None = None
        self._count_task: Task | None = None
        self._edits_since_count = 0
        body = QWidget()
        column = QVBoxLayout(body)
        self.table = QTableWidget(0, 6)
        self.table.setHorizontalHeaderLabels(["", "", "Segment", "mL", "Lock", "Status"])
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                   | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.table.setStyleSheet("QTableWidget::item:selected { background: #2d5a8c; "
                                 "color: white; }")
        header = self.table.horizontalHeader()
        for col, mode in ((VISIBLE, QHeaderView.ResizeMode.ResizeToContents),
                          (COLOR, QHeaderView.ResizeMode.ResizeToContents),
                          (NAME, QHeaderView.ResizeMode.Stretch),
                          (VOLUME, QHeaderView.ResizeMode.ResizeToContents),
                          (LOCKED, QHeaderView.ResizeMode.ResizeToContents),
                          (STATUS, QHeaderView.ResizeMode.ResizeToContents)):
            header.setSectionResizeMode(col, mode)
        column.addWidget(self.table)
        row = QHBoxLayout()
        self.add_button = QPushButton("Add")
        self.delete_button = QPushButton("Delete")
        self.color_button = QPushButton("Colour...")
        for b in (self.add_button, self.delete_button, self.color_button):
            row.addWidget(b)
        column.addLayout(row)
        self.setWidget(body)
        self.add_button.clicked.connect(lambda: self.add_segment())
        self.delete_button.clicked.connect(self._delete_selected)
        self.color_button.clicked.connect(self._ask_color)
        self.table.itemChanged.connect(self._item_changed)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self._volumes_timer = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._volumes_timer.timeout.connect(self.show_volumes)
        controller.tableChanged.connect(self.refresh)
        controller.sessionChanged.connect(self._recount)
        controller.edited.connect(self._on_edit)
        self.refresh()

    # -- public actions (also what the tests call) -------------------------------------------
    def labels(self) -> list[int]:
        """Segment labels in row order."""
        seg = self.controller.segmentation
        return [s.label for s in seg.segments] if seg is not None else []

    def add_segment(self, name: str = "") -> int | None:
        """Add an empty segment (an empty segmentation first if none is loaded)."""
        return self.controller.add_segment(name)

    def rename(self, label: int, name: str) -> None:
        seg = self.controller.segmentation
        if seg is not None and name.strip() and seg.segment(label).name != name.strip():
            self.controller.apply(rename_segment(seg, label, name.strip()))

    def recolor(self, label: int, color: tuple[int, int, int]) -> None:
        seg = self.controller.segmentation
        if seg is not None:
            self.controller.apply(recolor_segment(seg, label, color))

    def delete(self, label: int) -> None:
        self.controller.delete_segment(label)

    def set_status(self, label: int, status: ReviewStatus | str) -> None:
        """Set a segment's review status (now, by the current user): one undo step."""
        seg = self.controller.segmentation
        if seg is not None:
            self.controller.apply(set_status(seg, label, status))

    def set_visible(self, label: int, visible: bool) -> None:
        self.controller.set_visible(label, visible)
        self.refresh()

    def set_locked(self, label: int, locked: bool) -> None:
        """Lock (no tool changes its voxels) or unlock a segment."""
        self.controller.set_locked(label, locked)

    def volume_ml(self, label: int) -> float | None:
        """The volume the panel shows for a segment (``None`` until counted)."""
        seg = self.controller.segmentation
        if self.counts is None or seg is None:
            return None
        n = int(self.counts[label]) if label < len(self.counts) else 0
        return n * seg.voxel_volume_ml()

    # -- rows --------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Rebuild the rows from the segment table (a handful: cheap)."""
        c = self.controller
        seg = c.segmentation
        active = c.editor.active_label if c.editor is not None else None
        blocker = QSignalBlocker(self.table)
        self.table.setRowCount(0)
        for s in seg.segments if seg is not None else []:
            r = self.table.rowCount()
            self.table.insertRow(r)
            vis = _check_item(s.label not in c.hidden, "Show in the slice views")
            lock = _check_item(s.label in c.locked,
                               "Locked: no tool (brush, fill, scissors, AI) changes this segment")
            swatch = QPixmap(16, 16)
            swatch.fill(QColor(*s.color))
            color = QTableWidgetItem(QIcon(swatch), "")
            color.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
            name = QTableWidgetItem(s.name)
            name.setToolTip(f"label {s.label}, {s.source.value.lower()}")
            volume = QTableWidgetItem("")
            volume.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
            volume.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            state = QTableWidgetItem(status_text(s.review))  # under the box: for sorting
            state.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
            for col, item in ((VISIBLE, vis), (COLOR, color), (NAME, name), (VOLUME, volume),
                              (LOCKED, lock), (STATUS, state)):
                item.setData(Qt.ItemDataRole.UserRole, s.label)
                self.table.setItem(r, col, item)
            self.table.setCellWidget(r, STATUS, self._status_box(s.label, s.review))
            if s.label == active:
                font = QFont(name.font())
                font.setBold(True)
                name.setFont(font)
                name.setText(f"\u270e {s.name}")  # a pencil: this segment paints
                self.table.selectRow(r)
        del blocker
        self.delete_button.setEnabled(active is not None)
        self.color_button.setEnabled(active is not None)
        self.show_volumes()

    def _status_box(self, label: int, review: Review | None) -> QComboBox:
        """A row's status: shows it (coloured, who and when in the tooltip) and sets it."""
        box = QComboBox()
        for status in ReviewStatus:  # short words: the list is narrow (tooltips say more)
            box.addItem(status.value, status.value)
            box.setItemData(box.count() - 1, status.text, Qt.ItemDataRole.ToolTipRole)
        box.setPlaceholderText(status_text(None))  # shown while no status is recorded
        box.setCurrentIndex(box.findData(review.status.value) if review else -1)
        color = STATUS_COLORS[review.status if review else None]
        box.setStyleSheet(f"QComboBox {{ color: {color}; font-weight: bold; }}")
        box.setToolTip((review.describe() if review else "No review status recorded")
                       + "\nOnly completed segments are sent to training by default")
        box.activated.connect(lambda i: self._status_chosen(label, box.itemData(i)))
        return box

    def status_box(self, label: int) -> QComboBox | None:
        """The Status box of segment ``label``'s row."""
        labels = self.labels()
        if label not in labels:
            return None
        widget = self.table.cellWidget(labels.index(label), STATUS)
        return widget if isinstance(widget, QComboBox) else None

    def _status_chosen(self, label: int, status: str) -> None:
        # Later, not inside the box's own signal: the new table rebuilds the rows, box included.
        def apply() -> None:
            self.set_status(label, status)
            self.refresh()  # what it is now (unchanged while the AI runs)

        QTimer.singleShot(0, apply)

    def show_volumes(self) -> None:
        for r in range(self.table.rowCount()):
            item = self.table.item(r, VOLUME)
            if item is None:
                continue
            ml = self.volume_ml(int(item.data(Qt.ItemDataRole.UserRole)))
            with QSignalBlocker(self.table):
                item.setText("..." if ml is None else f"{ml:.2f}")

    def _label_of(self, item: QTableWidgetItem) -> int:
        return int(item.data(Qt.ItemDataRole.UserRole))

    def _item_changed(self, item: QTableWidgetItem) -> None:
        label = self._label_of(item)
        if item.column() == VISIBLE:
            self.set_visible(label, item.checkState() == Qt.CheckState.Checked)
        elif item.column() == LOCKED:
            self.set_locked(label, item.checkState() == Qt.CheckState.Checked)
        elif item.column() == NAME:
            self.rename(label, item.text().removeprefix("\u270e "))

    def _selection_changed(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        item = self.table.item(rows[0].row(), NAME) if rows else None
        if item is not None:
            label = self._label_of(item)
            editor = self.controller.editor
            if editor is not None and editor.active_label != label:
                self.controller.set_active(label)

    def _delete_selected(self) -> None:
        editor = self.controller.editor
        if editor is not None and editor.active_label is not None:
            self.delete(editor.active_label)

    def _ask_color(self) -> None:
        editor = self.controller.editor
        if editor is None or editor.active_label is None:
            return
        row = editor.segmentation.segment(editor.active_label)
        color = QColorDialog.getColor(QColor(*row.color), self, f"Colour of {row.name}")
        if color.isValid():
            self.recolor(row.label, (color.red(), color.green(), color.blue()))

    # -- volumes -----------------------------------------------------------------------------
    def _recount(self) -> None:
        """Count every label once per session, off the GUI thread."""
        self.counts = None
        seg = self.controller.segmentation
        if seg is None:
            self._count_task = None
            return
        labelmap = seg.labelmap
        task = Task(lambda _p: np.bincount(labelmap.ravel(), minlength=65536
                                           if labelmap.dtype == np.uint16 else 256))
        task.signals.finished.connect(self._on_counted)
        self._count_task, self._edits_since_count = task, 0
        QThreadPool.globalInstance().start(task)

    def _on_counted(self, task: Task, counts: Any) -> None:
        if task is not self._count_task:
            return
        self._count_task = None
        if self._edits_since_count:  # edits raced the count: count again
            self._recount()
            return
        self.counts = np.asarray(counts, dtype=np.int64)
        self.show_volumes()

    def _on_edit(self, edit: Edit, undo: bool) -> None:
        if self._count_task is not None:
            self._edits_since_count += 1
            return
        if self.counts is None or edit.region is None:
            return
        sign = -1 if undo else 1
        n = len(self.counts)
        self.counts += sign * (np.bincount(edit.values("new"), minlength=n)[:n]
                               - np.bincount(edit.values("old"), minlength=n)[:n])
        self._volumes_timer.start()
