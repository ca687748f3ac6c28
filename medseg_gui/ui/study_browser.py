"""The study browser dock: index a DICOM folder in the background, pick a series, load it.

The widget only gathers the user's choice; indexing is :func:`medseg_gui.io.index_folder`
run by a :class:`~medseg_gui.ui.workers.Task`, loading is the main window's job (it owns the
load task, its progress bar and its error reporting). Folders come from the Open button, the
recent list, the command line or drag and drop onto the main window.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QModelIndex, QObject, Qt, QThreadPool, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QMainWindow,
    QMenu,
    QProgressBar,
    QToolButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from medseg_gui.core.progress import Progress, scaled
from medseg_gui.core.segmentation import Segmentation
from medseg_gui.core.volume import Volume
from medseg_gui.io.dicom_index import (
    DicomIndex,
    SeriesEntry,
    index_folder,
    no_image_series_reason,
)
from medseg_gui.ui import settings
from medseg_gui.ui.workers import Task

__all__ = ["SeriesEntry", "StudyBrowser", "install_study_browser", "series_work"]

ENTRY_ROLE = Qt.ItemDataRole.UserRole + 1
COLUMNS = ["Patient / study / series", "Modality", "Slices", "Size"]


def slice_count(entry: SeriesEntry) -> int:
    """Frames of a multi-frame object, else the number of files."""
    return max(entry.frames, len(entry.files))


def best_series(index: DicomIndex) -> SeriesEntry | None:
    """The series to show first: the image series with the most slices (then the lowest
    series number), so a scout or a dose report never wins over the diagnostic series."""
    series = index.image_series()
    if not series:
        return None
    return max(series, key=lambda s: (slice_count(s), -(s.number if s.number is not None
                                                         else 1 << 30)))


def series_work(entry: SeriesEntry, labels: str | Path | None = None,
                source: str | Path | None = None
                ) -> Callable[[Progress], tuple[Volume, Segmentation | None]]:
    """Plain-Python work for the load task: read the series (from the index's headers) and
    optionally a label image to overlay."""

    def work(progress: Progress) -> tuple[Volume, Segmentation | None]:
        from medseg_gui.io.dicom_series import load_series
        from medseg_gui.io.masks import load_mask

        volume = load_series(entry.files, headers=entry.headers, source=source,
                             progress=scaled(progress, 0.0, 0.9 if labels else 1.0))
        return volume, load_mask(labels, volume, scaled(progress, 0.9, 1.0)) \
            if labels else None

    return work


class StudyBrowser(QWidget):
    """Patient / study / series tree of one indexed folder.

    Signals
    -------
    seriesActivated(object, object)
        A :class:`SeriesEntry` to load (double-click, or the best series after an
        auto-loading :meth:`open_folder`) and a label image path or ``None``.
    indexed(object)
        The new :class:`DicomIndex`.
    indexFailed(str)
        One line for the user (unreadable folder, no image series).
    """

    seriesActivated = Signal(object, object)
    indexed = Signal(object)
    indexFailed = Signal(str)
    openFileRequested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.index: DicomIndex | None = None
        self._task: Task | None = None
        self._auto: tuple[bool, str | Path | None] = (False, None)
        self.model = QStandardItemModel(0, len(COLUMNS), self)
        self.model.setHorizontalHeaderLabels(COLUMNS)
        self.tree = QTreeView()
        self.tree.setModel(self.model)
        self.tree.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.tree.setUniformRowHeights(True)
        self.tree.doubleClicked.connect(self._activated)
        self.open_button = _button("Open folder...")
        self.open_button.clicked.connect(self.ask_open_folder)
        self.recent_button = _button("Recent")
        self.recent_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.recent_menu = QMenu(self)
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self.recent_button.setMenu(self.recent_menu)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.cancel_button = _button("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        row = QHBoxLayout()
        for w in (self.open_button, self.recent_button, self.progress, self.cancel_button):
            row.addWidget(w)
        row.addStretch(1)
        box = QVBoxLayout(self)
        box.setContentsMargins(2, 2, 2, 2)
        box.addLayout(row)
        box.addWidget(self.tree)
        self._show_busy(False)

    # -- indexing --------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._task is not None

    def open_folder(self, folder: str | Path, *, auto_load: bool = False,
                    labels: str | Path | None = None) -> None:
        """Index ``folder`` in the background; with ``auto_load`` then load the best series."""
        if self._task is not None:
            self._task.cancel()
        self._auto = (auto_load, labels)
        task = Task(lambda progress: index_folder(folder, progress))
        task.signals.progress.connect(self._on_progress)
        task.signals.finished.connect(self._on_indexed)
        task.signals.failed.connect(self._on_failed)
        task.signals.cancelled.connect(self._on_cancelled)
        self._task = task
        self.progress.setValue(0)
        self._show_busy(True)
        QThreadPool.globalInstance().start(task)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _finish(self, task: Task) -> bool:
        if task is not self._task:
            return False  # superseded by a newer folder
        self._task = None
        self._show_busy(False)
        return True

    def _show_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        self.progress.setToolTip(message)

    def _on_failed(self, task: Task, exc: BaseException) -> None:
        if self._finish(task):
            self.indexFailed.emit(str(exc) or type(exc).__name__)

    def _on_cancelled(self, task: Task) -> None:
        self._finish(task)

    def _on_indexed(self, task: Task, index: DicomIndex) -> None:
        if not self._finish(task):
            return
        self.set_index(index)
        settings.add_recent_study(index.root)
        self.indexed.emit(index)
        auto_load, labels = self._auto
        if not auto_load:
            return
        entry = best_series(index)
        if entry is None:
            self.indexFailed.emit(f"{index.root}: {no_image_series_reason(index)}")
            return
        self.select(entry)
        self.seriesActivated.emit(entry, labels)

    # -- the tree ----------------------------------------------------------------------------
    def set_index(self, index: DicomIndex) -> None:
        """Show ``index`` as a tree (cheap: one row per series, not per file)."""
        self.index = index
        self.model.removeRows(0, self.model.rowCount())
        for patient in index.patients:
            p_row = _row(f"{patient.name or '(no name)'}  [{patient.patient_id}]")
            for study in patient.studies:
                date = study.date
                if len(date) == 8:
                    date = f"{date[:4]}-{date[4:6]}-{date[6:]}"
                s_row = _row(" ".join(x for x in (date, study.description) if x) or "(study)")
                for entry in study.series:
                    number = f"#{entry.number} " if entry.number is not None else ""
                    text = number + (entry.description or "(no description)")
                    if entry.part > 1:
                        text += f" (part {entry.part})"
                    size = f"{entry.columns}x{entry.rows}" if entry.rows else ""
                    e_row = _row(text, entry.modality, str(slice_count(entry)), size)
                    for item in e_row:
                        item.setData(entry, ENTRY_ROLE)
                        if not entry.is_image:
                            item.setEnabled(False)
                    s_row[0].appendRow(e_row)
                p_row[0].appendRow(s_row)
            self.model.appendRow(p_row)
        self.tree.expandAll()
        for col in range(len(COLUMNS)):
            self.tree.resizeColumnToContents(col)
        # Long descriptions must not push modality and slice count out of a narrow dock.
        self.tree.setColumnWidth(0, min(self.tree.columnWidth(0), 190))

    def series_rows(self) -> list[QModelIndex]:
        """Model indexes (column 0) of every series row, in tree order."""
        out = []
        for p in range(self.model.rowCount()):
            p_idx = self.model.index(p, 0)
            for s in range(self.model.rowCount(p_idx)):
                s_idx = self.model.index(s, 0, p_idx)
                out += [self.model.index(n, 0, s_idx) for n in range(self.model.rowCount(s_idx))]
        return out

    def select(self, entry: SeriesEntry) -> None:
        for idx in self.series_rows():
            if idx.data(ENTRY_ROLE) is entry:
                self.tree.setCurrentIndex(idx)
                return

    def _activated(self, idx: QModelIndex) -> None:
        entry = idx.data(ENTRY_ROLE)
        if isinstance(entry, SeriesEntry) and entry.is_image:
            root = self.index.root if self.index is not None else None
            self.seriesActivated.emit(entry, None)
            if root is not None:
                settings.add_recent_study(root)

    # -- folders -----------------------------------------------------------------------------
    def ask_open_folder(self) -> None:
        start = settings.get_str("browser/last_folder")
        folder = QFileDialog.getExistingDirectory(self, "Open DICOM folder", start)
        if folder:
            self.open_folder(folder, auto_load=True)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = settings.recent_studies()
        for path in recent:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _=False, p=path: self.open_recent(p))
        if not recent:
            self.recent_menu.addAction("(none yet)").setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list").triggered.connect(
                settings.clear_recent_studies)

    def open_recent(self, path: str) -> None:
        if Path(path).is_dir():
            self.open_folder(path, auto_load=True)
        else:
            self.openFileRequested.emit(path)


def _row(*texts: str) -> list[QStandardItem]:
    items = [QStandardItem(t) for t in texts]
    while len(items) < len(COLUMNS):
        items.append(QStandardItem(""))
    return items


class DropHandler(QObject):
    """Event filter that lets folders and files be dropped onto a window.

    A folder, or several files (the common folder is indexed), goes to the browser; a single
    file (NIfTI, one DICOM file) goes to ``open_file``.
    """

    def __init__(self, target: QWidget, browser: StudyBrowser,
                 open_file: Callable[[str], Any]) -> None:
        super().__init__(target)
        self.browser = browser
        self.open_file = open_file
        target.setAcceptDrops(True)
        target.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in (QEvent.Type.DragEnter, QEvent.Type.DragMove):
            assert isinstance(event, QDragEnterEvent | QDropEvent)
            if event.mimeData().hasUrls():
                event.acceptProposedAction()
                return True
        elif event.type() == QEvent.Type.Drop:
            assert isinstance(event, QDropEvent)
            paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
            if paths:
                self.drop_paths(paths)
                event.acceptProposedAction()
                return True
        return False

    def drop_paths(self, paths: list[str]) -> None:
        """Open what was dropped (also the entry point for tests)."""
        if len(paths) == 1 and Path(paths[0]).is_file():
            self.open_file(paths[0])
            return
        if len(paths) == 1:
            self.browser.open_folder(paths[0], auto_load=True)
            return
        parents = {str(Path(p) if Path(p).is_dir() else Path(p).parent) for p in paths}
        common = Path(os.path.commonpath(sorted(parents)))
        self.browser.open_folder(common, auto_load=True)


def install_study_browser(window: QMainWindow, open_series: Callable[..., Any],
                          open_file: Callable[[str], Any],
                          show_error: Callable[[str], Any]) -> StudyBrowser:
    """Add the browser as a left dock of ``window``, with drag and drop onto the window."""
    browser = StudyBrowser()
    dock = QDockWidget("Studies", window)
    dock.setObjectName("studies_dock")
    dock.setWidget(browser)
    window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
    browser.seriesActivated.connect(open_series)
    browser.indexFailed.connect(show_error)
    browser.openFileRequested.connect(open_file)
    browser.drop_handler = DropHandler(window, browser, open_file)  # type: ignore[attr-defined]
    browser.dock = dock  # type: ignore[attr-defined]
    return browser


def _button(text: str) -> QToolButton:
    button = QToolButton()
    button.setText(text)
    return button
