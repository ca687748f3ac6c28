"""The PACS dock: search a DICOMweb server, retrieve a series and open it, send a SEG back.

Every network call (QIDO-RS, WADO-RS, STOW-RS) runs in a :class:`~medseg_gui.ui.workers.Task`;
a failure (server down, wrong URL, refused instance) is reported once, in the status bar and,
unless the window is headless, in one message box. The server URL is kept in the settings
(``pacs/url``).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QThreadPool, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medseg_gui.core.paths import cache_dir
from medseg_gui.core.progress import Progress, check
from medseg_gui.core.segmentation import Segmentation
from medseg_gui.core.volume import Volume
from medseg_gui.ui.settings import get_str, set_value
from medseg_gui.ui.workers import Task

if TYPE_CHECKING:
    from medseg_gui.ui.workstation import Workstation

DEFAULT_URL = "http://localhost:8042/dicom-web"
URL_KEY = "pacs/url"
STUDY_COLUMNS = ["Patient", "ID", "Date", "Description", "Modalities"]
SERIES_COLUMNS = ["#", "Modality", "Description", "Images"]


@dataclass(frozen=True)
class StudyRow:
    study_uid: str
    patient: str
    patient_id: str
    date: str
    description: str
    modalities: str


@dataclass(frozen=True)
class SeriesRow:
    study_uid: str
    series_uid: str
    number: str
    modality: str
    description: str
    images: str


def _text(ds: Any, keyword: str) -> str:
    value = ds.get(keyword, "")
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "/".join(str(v) for v in value)
    return str(value)


def study_row(ds: Any) -> StudyRow:
    return StudyRow(_text(ds, "StudyInstanceUID"), _text(ds, "PatientName"),
                    _text(ds, "PatientID"), _text(ds, "StudyDate"),
                    _text(ds, "StudyDescription"), _text(ds, "ModalitiesInStudy"))


def series_row(study_uid: str, ds: Any) -> SeriesRow:
    return SeriesRow(study_uid, _text(ds, "SeriesInstanceUID"), _text(ds, "SeriesNumber"),
                     _text(ds, "Modality"), _text(ds, "SeriesDescription"),
                     _text(ds, "NumberOfSeriesRelatedInstances"))


def series_folder(study_uid: str, series_uid: str) -> Path:
    """Where a retrieved series is kept: ``cache_dir()/pacs/<study>/<series>``."""
    return cache_dir() / "pacs" / study_uid / series_uid


# -- the work, plain Python (runs on the thread pool) ----------------------------------------
def search_work(url: str, text: str) -> list[StudyRow]:
    """Studies whose patient name contains ``text`` or whose patient ID is ``text``."""
    from medseg_gui.io.pacs import DicomWebClient

    client = DicomWebClient(url, timeout=10)
    text = text.strip()
    found = client.search_studies(PatientName=f"*{text}*") if text else client.search_studies()
    if text:
        found += client.search_studies(PatientID=text)
    rows: dict[str, StudyRow] = {}
    for ds in found:
        row = study_row(ds)
        rows.setdefault(row.study_uid, row)
    return sorted(rows.values(), key=lambda r: (r.patient, r.date, r.study_uid))


def series_work(url: str, study_uid: str) -> list[SeriesRow]:
    from medseg_gui.io.pacs import DicomWebClient

    rows = [series_row(study_uid, ds)
            for ds in DicomWebClient(url, timeout=10).search_series(study_uid)]

    def number(r: SeriesRow) -> tuple[int, str]:
        return (int(r.number) if r.number.lstrip("-").isdigit() else 0, r.series_uid)

    return sorted(rows, key=number)


def retrieve_work(url: str, row: SeriesRow, progress: Progress) -> Path:
    """WADO-RS the series into a fresh :func:`series_folder`; returns the folder."""
    from medseg_gui.io.pacs import DicomWebClient

    folder = series_folder(row.study_uid, row.series_uid)
    check(progress, 0.05, f"Retrieving series {row.number} {row.description} ...")
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        files = DicomWebClient(url).retrieve_series(row.study_uid, row.series_uid, partial)
        check(progress, 0.95, f"Retrieved {len(files)} file(s)")
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def send_work(url: str, volume: Volume, seg: Segmentation, progress: Progress) -> str:
    """Write ``seg`` as a DICOM SEG referencing ``volume``'s series and STOW it to ``url``;
    returns the new SEG's SeriesInstanceUID."""
    import pydicom

    from medseg_gui.io.dicom_seg import source_files, write_dicom_seg
    from medseg_gui.io.pacs import DicomWebClient

    check(progress, 0.05, "Writing the DICOM SEG ...")
    sources = source_files(volume)
    with tempfile.TemporaryDirectory(prefix="medseg-seg-") as tmp:
        path = write_dicom_seg(seg, sources, Path(tmp) / "seg.dcm")
        check(progress, 0.6, "Sending the DICOM SEG to the PACS ...")
        DicomWebClient(url).store([path])
        series_uid = str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID)
    progress(1.0, "Sent")
    return series_uid


# -- the dock ---------------------------------------------------------------------------------
class PacsBrowser(QDockWidget):
    """Search / retrieve / send against one DICOMweb server.

    Signals
    -------
    studiesFound(list)
        The :class:`StudyRow` list of a finished search.
    seriesFound(list)
        The :class:`SeriesRow` list of the selected study.
    retrieved(object)
        The folder a series was retrieved into (it is then opened in the window).
    sent(str)
        The SeriesInstanceUID of a SEG stored on the server.
    failed(str)
        A one-line error message (also shown in the status bar / a message box).
    """

    studiesFound = Signal(list)
    seriesFound = Signal(list)
    retrieved = Signal(object)
    sent = Signal(str)
    failed = Signal(str)

    def __init__(self, window: Workstation) -> None:
        super().__init__("PACS", window)
        self.setObjectName("pacsDock")
        self.window_ = window
        self.studies: list[StudyRow] = []
        self.series: list[SeriesRow] = []
        self.last_error = ""
        self._tasks: dict[Task, str] = {}  # running task -> what it does

        self.url = QLineEdit(get_str(URL_KEY, DEFAULT_URL) or DEFAULT_URL)
        self.url.setPlaceholderText(DEFAULT_URL)
        self.url.editingFinished.connect(self._save_url)
        self.query = QLineEdit()
        self.query.setPlaceholderText("Patient name or ID (empty: all)")
        self.query.returnPressed.connect(self.search)
        self.search_button = QPushButton("Search")
        self.search_button.clicked.connect(self.search)
        self.study_table = self._table(STUDY_COLUMNS)
        self.study_table.itemSelectionChanged.connect(self._study_selected)
        self.series_table = self._table(SERIES_COLUMNS)
        self.series_table.itemSelectionChanged.connect(self._update_buttons)
        self.series_table.doubleClicked.connect(lambda _index: self.retrieve())
        self.retrieve_button = QPushButton("Retrieve and open")
        self.retrieve_button.clicked.connect(self.retrieve)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        body = QWidget()
        layout = QVBoxLayout(body)
        server = QHBoxLayout()
        server.addWidget(QLabel("DICOMweb"))
        server.addWidget(self.url, 1)
        layout.addLayout(server)
        find = QHBoxLayout()
        find.addWidget(self.query, 1)
        find.addWidget(self.search_button)
        layout.addLayout(find)
        layout.addWidget(self.study_table, 2)
        layout.addWidget(self.series_table, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.retrieve_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        self.setWidget(body)

        self.send_action = QAction("Send segmentation to &PACS", self)
        self.send_action.triggered.connect(self.send_segmentation)
        self._update_buttons()

    @staticmethod
    def _table(columns: list[str]) -> QTableWidget:
        table = QTableWidget(0, len(columns))
        table.setHorizontalHeaderLabels(columns)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.verticalHeader().hide()
        table.horizontalHeader().setStretchLastSection(True)
        return table

    # -- state ---------------------------------------------------------------------------------
    def server_url(self) -> str:
        return self.url.text().strip() or DEFAULT_URL

    def _save_url(self) -> None:
        set_value(URL_KEY, self.server_url())

    @property
    def busy(self) -> bool:
        return bool(self._tasks)

    def _doing(self, what: str) -> bool:
        return what in self._tasks.values()

    def selected_study(self) -> StudyRow | None:
        rows = self.study_table.selectionModel().selectedRows()
        return self.studies[rows[0].row()] if rows else None

    def selected_series(self) -> SeriesRow | None:
        rows = self.series_table.selectionModel().selectedRows()
        return self.series[rows[0].row()] if rows else None

    def _update_buttons(self) -> None:
        self.search_button.setEnabled(not self._doing("search"))
        self.retrieve_button.setEnabled(self.selected_series() is not None
                                        and not self._doing("retrieve"))
        self.cancel_button.setEnabled(self._doing("retrieve") or self._doing("send"))
        self.send_action.setEnabled(not self._doing("send"))
        self.progress.setVisible(self._doing("retrieve") or self._doing("send"))

    def _start(self, what: str, fn: Any, on_finished: Any) -> Task:
        task = Task(fn)
        task.signals.progress.connect(self._on_progress)
        task.signals.finished.connect(on_finished)
        task.signals.failed.connect(self._on_failed)
        task.signals.cancelled.connect(self._on_cancelled)
        self._tasks[task] = what
        self._update_buttons()
        QThreadPool.globalInstance().start(task)
        return task

    def _end(self, task: Task) -> str | None:
        what = self._tasks.pop(task, None)
        self._update_buttons()
        return what

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()

    def shutdown(self) -> None:
        """Cancel running work and wait for it (the window is closing)."""
        self.cancel()
        QThreadPool.globalInstance().waitForDone(30_000)

    # -- actions -------------------------------------------------------------------------------
    def search(self) -> None:
        """QIDO-RS search for studies matching the patient filter (in the background)."""
        if self._doing("search"):
            return
        self._save_url()
        url, text = self.server_url(), self.query.text()
        self._say(f"Searching {url} ...")
        self._start("search", lambda progress: search_work(url, text), self._on_studies)

    def _study_selected(self) -> None:
        study = self.selected_study()
        self.series = []
        self.series_table.setRowCount(0)
        self._update_buttons()
        if study is None:
            return
        url, uid = self.server_url(), study.study_uid
        self._start("series", lambda progress: series_work(url, uid), self._on_series)

    def retrieve(self) -> None:
        """WADO-RS the selected series into the cache, then open it in the window."""
        row = self.selected_series()
        if row is None or self._doing("retrieve"):
            return
        url = self.server_url()
        self.progress.setValue(0)
        self._start("retrieve", lambda progress: retrieve_work(url, row, progress),
                    self._on_retrieved)

    def send_segmentation(self) -> bool:
        """Write the current segmentation as a DICOM SEG and STOW it to the server."""
        volume, seg = self.window_.volume, self.window_.segmentation
        if volume is None or seg is None:
            self._report_error("Nothing to send: open a DICOM study and segment it first")
            return False
        if self._doing("send"):
            return False
        # a snapshot: the editor may keep painting into the live label map meanwhile
        snapshot = Segmentation(seg.labelmap.copy(), seg.geometry, list(seg.segments))
        url = self.server_url()
        self._save_url()
        self.progress.setValue(0)
        self._start("send", lambda progress: send_work(url, volume, snapshot, progress),
                    self._on_sent)
        return True

    # -- results (GUI thread) ------------------------------------------------------------------
    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        if message:
            self._say(message)

    def _on_studies(self, task: Task, rows: list[StudyRow]) -> None:
        self._end(task)
        self.studies = rows
        self.study_table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            values = (row.patient, row.patient_id, row.date, row.description, row.modalities)
            for c, value in enumerate(values):
                self.study_table.setItem(r, c, QTableWidgetItem(value))
        self.study_table.resizeColumnsToContents()
        self._say(f"{len(rows)} stud{'y' if len(rows) == 1 else 'ies'} found")
        self.studiesFound.emit(rows)

    def _on_series(self, task: Task, rows: list[SeriesRow]) -> None:
        self._end(task)
        study = self.selected_study()
        if study is None or any(r.study_uid != study.study_uid for r in rows):
            return  # the selection moved on meanwhile
        self.series = rows
        self.series_table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, value in enumerate((row.number, row.modality, row.description, row.images)):
                self.series_table.setItem(r, c, QTableWidgetItem(value))
        self.series_table.resizeColumnsToContents()
        self._update_buttons()
        self.seriesFound.emit(rows)

    def _on_retrieved(self, task: Task, folder: Path) -> None:
        self._end(task)
        self._say(f"Retrieved into {folder}; opening ...")
        self.retrieved.emit(folder)
        self.window_.open_path(folder)

    def _on_sent(self, task: Task, series_uid: str) -> None:
        self._end(task)
        message = f"Segmentation sent to {self.server_url()} as DICOM SEG"
        self._say(message)
        self.window_.statusBar().showMessage(message, 10000)
        if self.window_.dialogs:
            QMessageBox.information(self.window_, "PACS", message)
        self.sent.emit(series_uid)

    def _on_failed(self, task: Task, exc: BaseException) -> None:
        what = self._end(task)
        prefix = {"send": "Sending the segmentation failed: ",
                  "retrieve": "Retrieving the series failed: "}.get(what or "", "")
        self._report_error(prefix + (str(exc) or type(exc).__name__))

    def _on_cancelled(self, task: Task) -> None:
        what = self._end(task)
        self._say(f"{(what or 'PACS work').capitalize()} cancelled")

    def _say(self, message: str) -> None:
        self.status.setText(message)

    def _report_error(self, message: str) -> None:
        """One clear message: the dock, the status bar and (unless headless) a message box."""
        self.last_error = message
        self._say(message)
        self.window_.statusBar().showMessage(message, 15000)
        if self.window_.dialogs:
            QMessageBox.warning(self.window_, "PACS", message)
        self.failed.emit(message)


def install_pacs_browser(window: Workstation) -> PacsBrowser:
    """The PACS dock (hidden until File > PACS...) and File > Send segmentation to PACS."""
    from PySide6.QtCore import Qt

    from medseg_gui.ui.export_dialog import file_menu

    dock = PacsBrowser(window)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    dock.hide()
    show = QAction("&PACS...", window)

    def open_dock() -> None:
        dock.show()
        dock.raise_()

    show.triggered.connect(open_dock)
    menu = file_menu(window)
    if menu is not None:
        quit_ = next((a for a in menu.actions() if a.text().replace("&", "") == "Quit"), None)
        for action in (show, dock.send_action):
            if quit_ is None:
                menu.addAction(action)
            else:
                menu.insertAction(quit_, action)
    return dock
