"""File > Export...: format, segments and destination, then the export on a worker thread.

The dialog only gathers inputs; :func:`medseg_gui.io.export_commands.export` writes the files
(atomically). The chosen subset of segments is cut from the label map on the worker thread.
While the export runs the dialog stays open (modal), so no edit can change the label map under
it; it shows progress and closes on success. Tests set the fields and call :meth:`run_export`
instead of ``exec()``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import Qt, QThreadPool, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from medseg_gui.core.annotations import Annotations
from medseg_gui.core.progress import Progress, check
from medseg_gui.core.segmentation import Segmentation
from medseg_gui.core.volume import Volume
from medseg_gui.io.export_commands import FORMATS, export
from medseg_gui.ui.workers import Task

if TYPE_CHECKING:
    from medseg_gui.ui.workstation import Workstation

SUFFIXES = {"nifti": ".nii.gz", "seg-nrrd": ".seg.nrrd", "dicom-seg": ".dcm", "rtstruct": ".dcm",
            "stl": "", "obj": ".obj", "report": ".json", "sr": ".dcm"}
LABELS = {"nifti": "NIfTI label map (.nii.gz)", "seg-nrrd": "3D Slicer segmentation (.seg.nrrd)",
          "dicom-seg": "DICOM SEG", "rtstruct": "DICOM RTSTRUCT",
          "stl": "STL surfaces (a folder)", "obj": "OBJ surfaces", "report": "Report (JSON + CSV)",
          "sr": "DICOM SR measurements (+ its SEG)"}


def subset(seg: Segmentation, labels: list[int]) -> Segmentation:
    """``seg`` with only ``labels`` kept (other voxels become background); a copy."""
    keep = [s for s in seg.segments if s.label in labels]
    lut = np.zeros(256, dtype=seg.labelmap.dtype)
    for s in keep:
        lut[s.label] = s.label
    labelmap = lut[seg.labelmap] if seg.labelmap.dtype == np.uint8 else \
        np.where(np.isin(seg.labelmap, labels), seg.labelmap, 0).astype(seg.labelmap.dtype)
    return Segmentation(labelmap, seg.geometry, keep)


def targets(fmt: str, out: Path) -> list[Path]:
    """The paths an export to ``out`` writes (to ask before overwriting them)."""
    if fmt == "nifti":
        from medseg_gui.io.label_nifti import sidecar_path

        return [out, sidecar_path(out)]
    if fmt == "report":
        stem = out.with_suffix("") if out.suffix.lower() in (".json", ".csv") else out
        return [stem.with_suffix(".json"), stem.with_suffix(".csv")]
    if fmt == "sr":
        return [out, out.with_name(out.name.removesuffix(out.suffix) + ".seg.dcm")]
    return [out]


class ExportDialog(QDialog):
    """Format, segments (checkboxes) and destination of an export of the current mask.

    Signals
    -------
    exported(list)
        The paths written.
    exportFailed(str)
        One line.
    """

    exported = Signal(list)
    exportFailed = Signal(str)

    def __init__(self, window: Workstation) -> None:
        super().__init__(window)
        self.setWindowTitle("Export segmentation")
        self.window_ = window
        self.task: Task | None = None
        self.written: list[Path] = []
        self.warnings: list[str] = []  # what the last export wrote differently from what was asked
        self.error = ""
        form = QFormLayout()
        self.format = QComboBox()
        for fmt in FORMATS:
            self.format.addItem(LABELS.get(fmt, fmt), fmt)
        self.format.currentIndexChanged.connect(self._format_changed)
        form.addRow("Format", self.format)
        self.segments = QListWidget()
        seg = window.segmentation
        for s in seg.segments if seg is not None else []:
            item = QListWidgetItem(s.name)
            item.setData(Qt.ItemDataRole.UserRole, s.label)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            self.segments.addItem(item)
        form.addRow("Segments", self.segments)
        self.destination = QLineEdit()
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.destination, 1)
        row.addWidget(browse)
        form.addRow("Save to", row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(lambda: self.run_export())
        self.buttons.rejected.connect(self._cancel)
        column = QVBoxLayout(self)
        column.addLayout(form)
        column.addWidget(self.progress)
        column.addWidget(self.buttons)
        self._format_changed()

    # -- fields (what tests set) ---------------------------------------------------------
    def set_format(self, fmt: str) -> None:
        self.format.setCurrentIndex(self.format.findData(fmt))

    def set_selected(self, labels: list[int]) -> None:
        for n in range(self.segments.count()):
            item = self.segments.item(n)
            on = item.data(Qt.ItemDataRole.UserRole) in labels
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def selected(self) -> list[int]:
        items = (self.segments.item(n) for n in range(self.segments.count()))
        return [int(i.data(Qt.ItemDataRole.UserRole)) for i in items
                if i.checkState() == Qt.CheckState.Checked]

    def _format_changed(self) -> None:
        text = self.destination.text()
        if not text:
            return
        old = next((s for s in SUFFIXES.values() if s and text.endswith(s)), "")
        self.destination.setText(text[: len(text) - len(old)] + SUFFIXES[self.format.currentData()])

    def _browse(self) -> None:
        fmt = str(self.format.currentData())
        if fmt == "stl":
            path = QFileDialog.getExistingDirectory(self, "Folder for the STL files")
        else:
            path, _ = QFileDialog.getSaveFileName(self, "Export to", f"segmentation{SUFFIXES[fmt]}",
                                                  options=QFileDialog.Option.DontConfirmOverwrite)
        if path:
            self.destination.setText(path)

    # -- running -----------------------------------------------------------------------------
    def run_export(self, overwrite: bool | None = None) -> bool:
        """Start the export; ``overwrite=None`` asks when a target exists (refuses headless).

        Returns False (with a message) when the inputs are incomplete or the user declines.
        """
        volume, seg = self.window_.volume, self.window_.segmentation
        fmt, text = str(self.format.currentData()), self.destination.text().strip()
        labels = self.selected()
        problem = ("There is no segmentation to export" if volume is None or seg is None else
                   "Choose at least one segment" if not labels else
                   "Choose where to save" if not text else "")
        if problem:
            return self._failed_now(problem)
        assert volume is not None and seg is not None
        out = Path(text).expanduser()
        existing = [p for p in targets(fmt, out) if p.exists()]
        if existing and overwrite is None:
            overwrite = self.window_.dialogs and QMessageBox.question(
                self, "Overwrite?", f"{existing[0]} exists. Replace it?"
            ) == QMessageBox.StandardButton.Yes
            if not overwrite:
                return self._failed_now(f"{existing[0]} exists; not overwritten")
        correction = self._correction()
        notes = self.window_.editing.measure.notes  # the study's rulers and edited axes
        warnings: list[str] = []  # appended by the worker, read once it has finished
        self.warnings = warnings
        task = Task(lambda progress: _work(volume, seg, labels, fmt, out, bool(overwrite),
                                           correction, warnings.append, progress, notes))
        task.signals.progress.connect(self._on_progress)
        task.signals.finished.connect(self._on_finished)
        task.signals.failed.connect(self._on_failed)
        task.signals.cancelled.connect(self._on_failed)
        self.task = task
        self.progress.setValue(0)
        self.progress.show()
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(False)
        QThreadPool.globalInstance().start(task)
        return True

    def _correction(self) -> dict[str, Any] | None:
        editor = self.window_.editing.editor
        return editor.effort().to_dict() if editor is not None else None

    def _cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
        else:
            self.reject()

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(fraction * 1000))

    def _on_finished(self, task: Task, paths: list[Path]) -> None:
        if task is not self.task:
            return
        self.task, self.written = None, list(paths)
        said = "".join(f"; {w}" for w in self.warnings)
        self.window_.statusBar().showMessage(f"Exported {', '.join(map(str, paths))}{said}",
                                             15000)
        self.exported.emit(self.written)
        self.accept()

    def _on_failed(self, task: Task, exc: BaseException | None = None) -> None:
        if task is not self.task:
            return
        self.task = None
        self.progress.hide()
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(True)
        self._failed_now(f"Export failed: {exc}" if exc is not None else "Export cancelled")

    def _failed_now(self, message: str) -> bool:
        self.error = message
        self.window_.statusBar().showMessage(message, 15000)
        self.exportFailed.emit(message)
        if self.window_.dialogs:
            QMessageBox.warning(self, "Export", message)
        return False


def _work(volume: Volume, seg: Segmentation, labels: list[int], fmt: str, out: Path,
          overwrite: bool, correction: dict[str, Any] | None, warn: Callable[[str], None],
          progress: Progress, notes: Annotations | None = None) -> list[Path]:
    check(progress, 0.05, "preparing the segments")
    chosen = subset(seg, labels)
    check(progress, 0.2, f"writing {fmt}")
    paths = export(volume, chosen, fmt, out, overwrite=overwrite, correction=correction,
                   warn=warn, annotations=notes)
    check(progress, 1.0, "done")
    return paths


def install_export(window: Workstation) -> QAction:
    """File > Export... (Ctrl+E), placed before Quit."""
    action = QAction("&Export segmentation...", window)
    action.setShortcut(QKeySequence("Ctrl+E"))

    def show() -> None:
        if window.segmentation is None:
            window.statusBar().showMessage("Nothing to export: segment or open labels first",
                                           10000)
            return
        ExportDialog(window).open()

    action.triggered.connect(show)
    _add_to_file_menu(window, action)
    return action


def file_menu(window: Workstation) -> QMenu | None:
    """The window's File menu."""
    for top in window.menuBar().actions():
        menu = top.menu()
        if top.text().replace("&", "") == "File" and isinstance(menu, QMenu):
            return menu
    return None


def _add_to_file_menu(window: Workstation, action: QAction) -> None:
    """Insert ``action`` before File > Quit."""
    menu = file_menu(window)
    if menu is not None:
        quit_ = next((a for a in menu.actions() if a.text().replace("&", "") == "Quit"), None)
        if quit_ is None:
            menu.addAction(action)
        else:
            menu.insertAction(quit_, action)
