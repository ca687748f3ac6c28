"""Fine-tune from the Training queue dock: ``medseg finetune`` as a subprocess job, then promote.

"Fine-tune" starts ``python -m medseg_gui.training finetune --queue ...`` for the model chosen
beside it (the automatic tumour model, or the promptable model: its fine-tune simulates users on
the corrected masks and is gated on held-out interactive Dice) as a
:class:`~medseg_gui.training.jobs.Job` (never in the GUI process); a timer polls
:meth:`Job.state` for progress, Cancel stops the job's process group. When it succeeds the new
version is offered to :meth:`ModelRegistry.promote`: "promoted X" or "kept Y: <reason>". Segment
tumour runs the active version, so a promotion switches it. While Segment tumour runs, the job is
paused (SIGSTOP: it yields the GPU) and resumed when the segmentation ends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QCoreApplication, QSettings, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from medseg_gui.core.jobs import JobStatus
from medseg_gui.inference.models import DEFAULT_MODEL, DEFAULT_PROMPT_MODEL
from medseg_gui.io.errors import LoadError
from medseg_gui.training.jobs import Job, python_job

if TYPE_CHECKING:
    from medseg_gui.ui.workstation import Workstation

POLL_MS = 200
VALIDATION_KEY = "finetune/validation_data"
MODELS = (DEFAULT_MODEL, DEFAULT_PROMPT_MODEL)
# (version, out folder, validation folder, base model:version, learn from segments of any
# review status) -> the job to run (not started).
JobFactory = Callable[[str, Path, str, str, bool], Job]


def finetune_job(version: str, out: Path, validation: str, base: str,
                 any_status: bool = False) -> Job:
    """The real job: fine-tune the active version ``base`` on the training queue (its completed
    segments only, unless ``any_status``)."""
    return python_job("medseg_gui.training", "finetune", "--queue", "--from", base,
                      "--validation-data", validation, "--version", version, "--out", str(out),
                      *(["--any-status"] if any_status else []))


def validation_key(model_id: str) -> str:
    """Where the held-out folder of each model is remembered (they differ per model)."""
    return VALIDATION_KEY if model_id == DEFAULT_MODEL else f"{VALIDATION_KEY}/{model_id}"


class FinetunePanel(QWidget):
    """Fine-tune button, progress bar, Cancel and a result line (in the Training queue dock).

    Parameters
    ----------
    window
        The main window (status bar, ``segment_action``).
    job_factory
        Builds the job (default :func:`finetune_job`); tests pass a stand-in command.

    Signals
    -------
    promoted(str)
        A version (``"model-id:version"``) became active: whatever holds the old one reloads.
    """

    promoted = Signal(str)

    def __init__(self, window: Workstation, job_factory: JobFactory = finetune_job) -> None:
        super().__init__()
        self.window_ = window
        self.job_factory = job_factory
        self.job: Job | None = None
        self.engine_job: Job | None = None
        self.new_ref = ""
        self.result = ""
        self.any_status: QCheckBox | None = None  # the queue dock's "Include ... not completed"
        self.model = QComboBox()
        self.model.addItems(list(MODELS))
        self.model.setToolTip("The model to fine-tune on the queued corrections")
        self.start_button, self.cancel_button = QPushButton("Fine-tune"), QPushButton("Cancel")
        self.start_button.setToolTip("Fine-tune the active model on the queued corrections")
        self.start_button.clicked.connect(lambda: self.start())
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.label = QLabel("")
        self.label.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.model)
        row.addWidget(self.start_button)
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(row)
        column.addWidget(self.label)
        self._timer = QTimer(self, interval=POLL_MS)
        self._timer.timeout.connect(self.poll)
        # Yield to interactive segmentation (installed before the queue dock and this panel).
        window.segment_action.started.connect(self.pause)
        window.segment_action.ended.connect(self.resume)

    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.status.finished

    # -- job -------------------------------------------------------------------------------
    def start(self, validation: str | None = None) -> bool:
        """Start fine-tuning the active version of the chosen model; False (with a message)
        if it cannot."""
        from medseg_gui.inference.registry import ModelRegistry

        if self.running:
            return self._say("A fine-tune job is already running")
        registry = ModelRegistry()
        model_id = self.model.currentText()
        base = registry.active(model_id)
        if base is None:
            return self._say(f"No active {model_id} model to fine-tune")
        validation = validation or self._validation_folder(model_id)
        if not validation:
            return self._say("Fine-tune needs the folder of the model's held-out cases")
        version = f"{base.version}-ft.{datetime.now(UTC).strftime('%Y%m%d%H%M%S')}"
        out = registry.user / base.model_id / version
        self.new_ref, self.result = f"{base.model_id}:{version}", ""
        any_status = self.any_status is not None and self.any_status.isChecked()
        self.job = self.job_factory(version, out, validation, base.ref, any_status).start()
        if self.window_.segment_action.running:
            self.job.pause()
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self._say(f"Fine-tuning {base.ref} as {self.new_ref} ...")
        self._timer.start()
        return True

    def _validation_folder(self, model_id: str) -> str:
        settings = QSettings()
        key = validation_key(model_id)
        folder = str(settings.value(key, "") or "")
        if not folder and self.window_.dialogs:
            folder = QFileDialog.getExistingDirectory(
                self, f"Held-out validation cases of {model_id} (prepared folder)")
            if folder:
                settings.setValue(key, folder)
        return folder

    def cancel(self) -> None:
        """Stop the job (and everything it started); the poll reports it."""
        if self.job is not None:
            self.job.cancel(grace_s=3.0)
            self.poll()

    def pause(self) -> None:
        if self.job is not None:
            self.job.pause()

    def resume(self) -> None:
        if self.job is not None:
            self.job.resume()

    def shutdown(self) -> None:
        """Stop the jobs (the window is closing): they run in their own process groups."""
        self._timer.stop()
        for job in (self.job, self.engine_job):
            if job is not None and not job.status.finished:
                job.cancel(grace_s=2.0)

    def poll(self) -> None:
        """Show the job's progress; when it ends, report and (on success) promote."""
        if self.job is None:
            return
        state = self.job.state()
        self.progress.setValue(int(state.fraction * 1000))
        if not state.status.finished:
            paused = " (paused for segmentation)" if state.status is JobStatus.PAUSED else ""
            self.label.setText(f"{state.message}{paused}")
            return
        self._timer.stop()
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if state.status is JobStatus.DONE:
            self.progress.setValue(1000)
            self.promote(self.new_ref)
        elif state.status is JobStatus.CANCELLED:
            self._say("Fine-tune cancelled")
        else:
            self._say(f"Fine-tune failed: {state.error.splitlines()[0] if state.error else ''}")

    # -- promotion -------------------------------------------------------------------------
    def promote(self, ref: str) -> bool:
        """Try to make ``ref`` active; report "promoted X" or "kept Y: <reason>"."""
        from medseg_gui.inference.registry import ModelRegistry

        registry = ModelRegistry()
        model_id = ref.partition(":")[0]
        try:
            registry.promote(ref, reason="fine-tuned in the GUI")
        except LoadError as exc:  # PromotionRefused included
            kept = registry.active(model_id)
            self._say(f"kept {kept.ref if kept else model_id}: {exc}")
            return False
        self._say(f"promoted {ref}")
        self.promoted.emit(ref)
        self.rebuild_engine(registry.find(ref).folder)
        return True

    def rebuild_engine(self, folder: Path, command: Sequence[str] | None = None) -> bool:
        """Build the TensorRT engine of a promoted model in the background, when TensorRT exists."""
        from medseg_gui.inference.backend import module_available

        if command is None and not module_available("tensorrt"):
            self._say(f"{self.result}; no TensorRT here, no engine to rebuild")
            return False
        self.engine_job = (Job(command, name="build-engine") if command is not None else
                           python_job("medseg_gui.cli", "build-engine", "--model", str(folder)))
        self.engine_job.start()
        self._say(f"{self.result}; building its TensorRT engine in the background")
        return True

    def _say(self, message: str) -> bool:
        self.result = message
        self.label.setText(message)
        self.window_.statusBar().showMessage(message, 30000)
        return False


def install_finetune_panel(window: Workstation, dock_body: QWidget) -> FinetunePanel:
    """Add the panel below the Training queue table (``dock_body`` is the dock's widget)."""
    panel = FinetunePanel(window)
    panel.promoted.connect(window.editing.ai.model_promoted)  # Segment tumour reads it per run
    layout = dock_body.layout()
    if layout is not None:
        layout.addWidget(panel)
    app = QCoreApplication.instance()
    if app is not None:
        app.aboutToQuit.connect(panel.shutdown)
    return panel
