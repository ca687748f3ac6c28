"""File > Send to training, and the Queue dock listing the training queue.

"Send to training" snapshots the corrected label map with its segment table, the AI draft and
the edit times on the GUI thread (a copy), then on a worker thread writes both masks to a private
temporary folder and calls :func:`~medseg_gui.training.queue_commands.queue_study`, which
re-reads the study from its source, de-identifies it and queues it. Only completed segments are
learnt from unless "Include segments not completed" is ticked (that box also makes Fine-tune learn
from them); the others travel along as unknown, never as background, and the status bar names
them. Reading and changing the queue (SQLite) also runs on worker threads, so a slow disk never
freezes the window.
"""

from __future__ import annotations

import getpass
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy.typing as npt
from PySide6.QtCore import Qt, QThreadPool, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDockWidget,
    QHBoxLayout,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.progress import Progress, check
from medseg_gui.core.segmentation import Segment, Segmentation
from medseg_gui.core.volume import Volume
from medseg_gui.editing.effort import active_time
from medseg_gui.training.queue import QueueItem, TrainingQueue
from medseg_gui.training.review_filter import select_segments
from medseg_gui.ui.export_dialog import file_menu
from medseg_gui.ui.workers import Task

if TYPE_CHECKING:
    from medseg_gui.ui.finetune_panel import FinetunePanel
    from medseg_gui.ui.workstation import Workstation

COLUMNS = ("Id", "Created", "Model", "Status", "Dice vs draft")


def _list_items(progress: Progress) -> list[QueueItem]:
    with TrainingQueue() as q:
        return q.items()


def _remove_item(item_id: int, progress: Progress) -> list[QueueItem]:
    with TrainingQueue() as q:
        q.remove(item_id)
        return q.items()


def send_work(source: str, series_uid: str | None, geometry: Geometry,
              mask: npt.NDArray[Any], segments: list[Segment], draft: npt.NDArray[Any] | None,
              model_ref: str, intervals: list[tuple[float, float]], any_status: bool,
              progress: Progress) -> QueueItem:
    """Queue a case (runs on a worker thread; Qt-free)."""
    from medseg_gui.io.imagefile import write_image
    from medseg_gui.io.label_nifti import write_label_nifti
    from medseg_gui.training.queue_commands import queue_study

    check(progress, 0.0, "writing the masks")
    with tempfile.TemporaryDirectory(prefix="medseg-queue-") as tmp:
        # With its sidecar: the segment table carries the review statuses queue_study reads.
        mask_file = write_label_nifti(Segmentation(mask, geometry, segments),
                                      Path(tmp) / "mask.nii.gz")
        draft_file = None if draft is None else write_image(Volume(draft, geometry),
                                                            Path(tmp) / "draft.nii.gz")
        seconds = active_time(intervals) if intervals else None
        return queue_study(source, mask_file, draft=draft_file, model_ref=model_ref,
                           annotator=getpass.getuser(), series_uid=series_uid,
                           editing_seconds=seconds, any_status=any_status, progress=progress)


class QueuePanel(QDockWidget):
    """The training queue as a table (id, created, model, status) with Refresh and Remove.

    Signals
    -------
    refreshed(list)
        The :class:`QueueItem` s now shown.
    queued(object)
        The :class:`QueueItem` "Send to training" added.
    """

    refreshed = Signal(list)
    queued = Signal(object)

    def __init__(self, window: Workstation) -> None:
        super().__init__("Training queue", window)
        self.setObjectName("QueueDock")
        self.window_ = window
        self.items: list[QueueItem] = []
        self.error = ""
        self.message = ""  # the last "Queued ..." line
        self.skipped = ""  # the segments the last send left out
        self._tasks: set[Task] = set()
        self.finetune: FinetunePanel | None = None  # the Fine-tune controls, when installed
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        refresh, self.remove_button = QPushButton("Refresh"), QPushButton("Remove")
        refresh.clicked.connect(self.refresh)
        self.remove_button.clicked.connect(lambda: self.remove_selected())
        self.any_status = QCheckBox("Include segments not completed")
        self.any_status.setToolTip("Send to training and Fine-tune learn only from segments "
                                   "whose review status is completed, unless this is ticked; "
                                   "the others are ignored, not learnt as background")
        buttons = QHBoxLayout()
        buttons.addWidget(refresh)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        buttons.addWidget(self.any_status)
        body = QWidget()
        column = QVBoxLayout(body)
        column.addWidget(self.table)
        column.addLayout(buttons)
        self.setWidget(body)
        self.send_action = QAction("Send to &training", window)
        self.send_action.setToolTip("De-identify this study and queue it with the corrected mask")
        self.send_action.triggered.connect(lambda: self.send())

    # -- queue operations on worker threads ----------------------------------------------
    def _start(self, fn: Any, done: Any) -> Task:
        task = Task(fn)
        task.signals.finished.connect(done)
        task.signals.failed.connect(self._on_failed)
        task.signals.cancelled.connect(self._on_cancelled)
        self._tasks.add(task)
        QThreadPool.globalInstance().start(task)
        return task

    def refresh(self) -> None:
        """Re-read the queue in the background."""
        self._start(_list_items, self._on_listed)

    def remove_selected(self, confirm: bool | None = None) -> bool:
        """Remove the selected case (asks first unless ``confirm`` is given)."""
        row = self.table.currentRow()
        if not 0 <= row < len(self.items):
            return False
        item = self.items[row]
        if confirm is None:
            confirm = self.window_.dialogs and QMessageBox.question(
                self, "Remove from queue", f"Remove case {item.id} ({item.case_id}) and its "
                "files from the training queue?") == QMessageBox.StandardButton.Yes
        if not confirm:
            return False
        self._start(lambda progress: _remove_item(item.id, progress), self._on_listed)
        return True

    def send(self) -> bool:
        """Queue the current study, its corrected mask, AI draft, model and effort."""
        w = self.window_
        volume, seg, editor = w.volume, w.segmentation, w.editing.editor
        if volume is None or seg is None or editor is None:
            return self._fail("Nothing to send: open a study and segment it first")
        if not volume.source:
            return self._fail("This study has no source file to de-identify and queue")
        if not volume.geometry.same_grid(seg.geometry):
            return self._fail("The mask is not on the study's voxel grid")
        any_status = self.any_status.isChecked()
        chosen = select_segments(seg.segments, any_status)
        if not chosen.kept:
            return self._fail("Nothing to send: no segment is completed (set its status in "
                              "the Segments list, or tick \"Include segments not completed\")")
        mask = seg.labelmap.copy()  # a snapshot: editing may go on meanwhile
        ai = w.segment_action.draft is seg
        model_ref = next((s.model for s in seg.segments if s.model), "")
        args = (volume.source, volume.info.series_uid or None, seg.geometry, mask,
                list(seg.segments), editor.draft if ai else None, model_ref,
                list(editor.intervals), any_status)
        self._start(lambda progress: send_work(*args, progress=progress), self._on_sent)
        self.skipped = chosen.describe_skipped()
        w.statusBar().showMessage("Sending the case to the training queue ...")
        return True

    # -- results ---------------------------------------------------------------------------
    def _on_listed(self, task: Task, items: list[QueueItem]) -> None:
        self._tasks.discard(task)
        self.items = list(items)
        self.table.setRowCount(len(self.items))
        for row, it in enumerate(self.items):
            dice = it.effort.dice_draft_vs_corrected
            values = (str(it.id), it.created.replace("T", " ")[:19], it.model_ref or "-",
                      it.status.value, "-" if dice is None else f"{dice:.3f}")
            for col, text in enumerate(values):
                cell = QTableWidgetItem(text)
                cell.setData(Qt.ItemDataRole.UserRole, it.id)
                self.table.setItem(row, col, cell)
        self.table.resizeColumnsToContents()
        self.refreshed.emit(self.items)

    def _on_sent(self, task: Task, item: QueueItem) -> None:
        self._tasks.discard(task)
        skipped = f"; left out (not completed): {self.skipped}" if self.skipped else ""
        self.message = f"Queued for training as case {item.id} (de-identified){skipped}"
        self.window_.statusBar().showMessage(self.message, 15000)
        self.queued.emit(item)
        self.refresh()

    def _on_failed(self, task: Task, exc: BaseException) -> None:
        self._tasks.discard(task)
        self._fail(f"Training queue: {exc}")

    def _on_cancelled(self, task: Task) -> None:
        self._tasks.discard(task)

    def _fail(self, message: str) -> bool:
        self.error = message
        self.window_.statusBar().showMessage(message, 15000)
        if self.window_.dialogs:
            QMessageBox.warning(self, "Training queue", message)
        return False


def install_queue_panel(window: Workstation) -> QueuePanel:
    """The Queue dock (tabbed under the right docks) and File > Send to training."""
    panel = QueuePanel(window)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, panel)
    menu = file_menu(window)
    if menu is not None:
        quit_ = next((a for a in menu.actions() if a.text().replace("&", "") == "Quit"), None)
        if quit_ is None:
            menu.addAction(panel.send_action)
        else:
            menu.insertAction(quit_, panel.send_action)
    from medseg_gui.ui.finetune_panel import install_finetune_panel

    panel.finetune = install_finetune_panel(window, panel.widget())
    panel.finetune.any_status = panel.any_status
    panel.refresh()
    return panel

