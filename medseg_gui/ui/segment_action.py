""""Segment tumour": the default model in the inference worker process, polled by a timer.

Without an explicit model it runs the registry's *active* version of the default model
(:meth:`~medseg_gui.inference.registry.ModelRegistry.active`), read afresh on every run, so a
promotion switches the next segmentation to the new version; its segments record that ref.

The GUI thread only submits the job (one copy of the voxels into shared memory), polls
:meth:`~medseg_gui.inference.worker.InferenceWorker.poll` every ``POLL_MS`` (non-blocking), and
shows progress ("windows done of total") and Cancel in the status bar. The result becomes a
new editable segmentation through :meth:`Workstation.set_segmentation`, which asks before it
replaces manual edits; the editor then tracks effort against this result as the AI draft.
A crash of the worker process, or a missing or tampered model, is one message; the window
and its edits survive.

A study outside the model card's intended use (:mod:`~medseg_gui.inference.guard`: another body
region, a trunk-sized cross-section, a mask far larger than any in training or lying against
lung) is never shown as a draft without the user confirming: a dialog names the reason and
offers the AI prompt tool (the promptable model, for any lesion), running anyway, or nothing;
without dialogs (headless, tests) the status bar says so and :attr:`refused` is emitted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QMessageBox

from medseg_gui.core.jobs import JobStatus
from medseg_gui.core.segmentation import Segmentation
from medseg_gui.core.volume import Volume
from medseg_gui.inference.model_card import ModelCard
from medseg_gui.inference.models import resolve_model
from medseg_gui.inference.worker import InferenceWorker, SegmentJob
from medseg_gui.io.errors import LoadError

if TYPE_CHECKING:
    from medseg_gui.ui.workstation import Workstation

POLL_MS = 100


class SegmentAction(QObject):
    """The "Segment tumour" action (toolbar, Tools menu, Ctrl+T) and its running job.

    Parameters
    ----------
    window
        The main window (its volume, segmentation and status bar).
    model
        ``ID[:VERSION]`` or a model folder; ``None`` is the registry's active version of the
        default model.
    backend, device
        Passed to :meth:`InferenceWorker.submit` (``"auto"`` picks the fastest available).

    Signals
    -------
    segmented(object)
        The new :class:`Segmentation`, once it is shown and edited.
    failed(str)
        A one-line error (worker died, model missing or tampered, ...).
    refused(str)
        The result was not applied: the user kept their edits, or the study or result is
        outside the model's intended use and was not confirmed.
    started()
        A run was submitted (a fine-tune job yields the GPU until :attr:`ended`).
    ended()
        The run finished, failed or was cancelled.
    """

    segmented = Signal(object)
    failed = Signal(str)
    refused = Signal(str)
    started = Signal()
    ended = Signal()

    def __init__(self, window: Workstation, model: str | None = None, backend: str = "auto",
                 device: str | None = None) -> None:
        super().__init__(window)
        self.window = window
        self.model, self.backend, self.device = model, backend, device
        self.worker: InferenceWorker | None = None  # started on first use (spawns processes)
        self.job: SegmentJob | None = None
        self.last_summary = ""
        self.last_error = ""
        self.last_warning = ""  # the last intended-use warning
        self.draft: Segmentation | None = None  # the last AI result applied
        self._volume: Volume | None = None
        self._force = False
        self.action = QAction("Segment &tumour", window)
        self.action.setShortcut(QKeySequence("Ctrl+T"))
        self.action.setToolTip("Run the AI model on the study (Ctrl+T)")
        self.action.triggered.connect(lambda: self.start())
        self._timer = QTimer(self, interval=POLL_MS)
        self._timer.timeout.connect(self.poll)
        window.cancel_button.clicked.connect(self.cancel)

    @property
    def running(self) -> bool:
        return self.job is not None

    def start(self, force: bool = False, check_use: bool = True) -> bool:
        """Segment the loaded volume; a running request is cancelled first.

        ``force`` replaces edited segmentations without asking (for scripts and tests);
        ``check_use=False`` runs the model on a study outside its intended use (the user
        confirmed). Returns False (with a message) when there is nothing to segment or no model.
        """
        volume = self.window.volume
        if volume is None:
            self._fail("Open a study before segmenting it")
            return False
        try:
            card = self.model_card()
        except (LoadError, OSError, ValueError) as exc:
            self._fail(str(exc))
            return False
        if self.worker is None:
            self.worker = InferenceWorker()
        if self.job is not None:  # a newer request replaces the older one
            self.worker.cancel(self.job.job_id)
        self._volume, self._force, self._checked = volume, force, check_use
        key = f"{id(volume)}:{volume.info.series_uid or volume.source}"
        self.job = self.worker.submit(volume, card.folder, study_key=key, backend=self.backend,
                                      device=self.device, check_use=check_use)
        self._show_progress(0.0, f"Segmenting with {card.ref} ...")
        self._timer.start()
        self.started.emit()
        return True

    def model_card(self) -> ModelCard:
        """The verified card to run: :attr:`model`, else the active default model version."""
        return resolve_model(self.model)

    def cancel(self) -> None:
        """Ask the running job to stop (the worker terminates it after a grace period)."""
        if self.worker is not None and self.job is not None:
            self.worker.cancel(self.job.job_id)
            self.window.statusBar().showMessage("Cancelling segmentation ...")

    def shutdown(self) -> None:
        """Stop the timer and every worker process (the window is closing)."""
        self._timer.stop()
        if self.worker is not None:
            self.worker.shutdown()
        self.job = None

    # -- polling -----------------------------------------------------------------------------
    def poll(self) -> None:
        """Handle the worker's events (called by the timer; never blocks)."""
        if self.worker is None:
            return
        for event in self.worker.poll():
            job = self.job
            if job is None or event.job_id != job.job_id:
                continue  # an older, superseded request
            if event.status is JobStatus.RUNNING:
                self._show_progress(event.fraction, event.message)
            elif event.status is JobStatus.DONE and job.report.get("outside_use"):
                self._end()
                self._outside(job)
            elif event.status is JobStatus.DONE:
                self._end()
                self._apply(job)
            elif event.status is JobStatus.OUTSIDE_USE:
                self._end()
                self._outside(job)
            elif event.status is JobStatus.CANCELLED:
                self._end()
                self.window.statusBar().showMessage("Segmentation cancelled", 5000)
            else:
                self._end()
                self._fail(f"Segmentation failed: {job.error or event.message}")
        # Superseded jobs are polled until they end, so that their shared memory is freed.
        if self.job is None and all(j.finished for j in self.worker.jobs.values()):
            self._timer.stop()

    def _apply(self, job: SegmentJob) -> None:
        seg = job.segmentation
        if seg is None or self.window.volume is not self._volume:
            self.window.statusBar().showMessage("Segmentation discarded: another study is open")
            return
        summary = str(job.report.get("summary", job.message))
        self.last_summary = summary
        if not self.window.set_segmentation(seg, force=self._force):
            text = "Kept your edited segmentation; the AI result was not applied"
            self.window.statusBar().showMessage(text, 15000)
            self.refused.emit(text)
            return
        self.draft = seg
        models = sorted({sg.model for sg in seg.segments if sg.model})
        if job.probability is not None:  # the overlay and region list of this draft
            self.window.confidence.set_draft(job.probability, seg, job.report,
                                             ", ".join(models) or "the AI model")
        by = f" by {', '.join(models)}" if models else ""
        outside = f" (WARNING: {job.report['warning']})" if job.report.get("warning") else ""
        if not self._checked:
            outside = " (WARNING: run on a study outside the model's intended use)"
        self.window.statusBar().showMessage(f"Segmented{by}{outside}: {summary}", 30000)
        self.segmented.emit(seg)

    def _outside(self, job: SegmentJob) -> None:
        """The study (``stage`` "study": the model did not run) or the result is outside the
        model's intended use: ask, or say so and refuse."""
        text = str(job.report.get("warning") or job.report.get("summary") or job.message)
        self.last_warning = text
        study = job.report.get("stage") == "study"
        if self.window.dialogs:
            box = QMessageBox(QMessageBox.Icon.Warning, "Outside what the model knows",
                              f"This {'study' if study else 'result'} is {text}.\n\n"
                              "The AI prompt tool segments any lesion from a click or a box.",
                              parent=self.window)
            prompt = box.addButton("Use the AI prompt tool", QMessageBox.ButtonRole.AcceptRole)
            anyway = box.addButton("Run the model anyway" if study else "Show the draft",
                                   QMessageBox.ButtonRole.DestructiveRole)
            box.addButton(QMessageBox.StandardButton.Cancel)
            box.setDefaultButton(prompt)
            box.exec()
            if box.clickedButton() is prompt:
                self.offer_prompt_tool()
            elif box.clickedButton() is anyway and study:
                self.start(force=self._force, check_use=False)
            elif box.clickedButton() is anyway:
                self._apply(job)
            else:
                self.refused.emit(text)
            return
        # The what-to-do first: the status bar cuts a long line behind the HU readout.
        self.window.statusBar().showMessage(
            f"Not {'segmented' if study else 'shown as a draft'}: outside what "
            f"{job.report.get('model', 'the model')} was trained for; outline the lesion with "
            f"the AI prompt tool (A) instead. Why: {'; '.join(job.report['outside_use'])}")
        self.refused.emit(text)

    def offer_prompt_tool(self) -> None:
        """Switch to the AI prompt tool (the promptable model) and say how to use it."""
        from medseg_gui.editing.tools import Tool

        self.window.editing.set_tool(Tool.AI)
        self.window.statusBar().showMessage(
            "AI prompt tool: click the lesion (Shift+click: not lesion), or drag a box around it")

    # -- status bar --------------------------------------------------------------------------
    def _show_progress(self, fraction: float, message: str) -> None:
        w = self.window
        w.progress_bar.setValue(int(fraction * 1000))
        w.progress_bar.show()
        w.cancel_button.show()
        if message:
            w.statusBar().showMessage(f"Segmenting: {message}")

    def _end(self) -> None:
        self.job = None
        if not self.window.loading:
            self.window.progress_bar.hide()
            self.window.cancel_button.hide()
        self.ended.emit()

    def _fail(self, message: str) -> None:
        self.last_error = message
        self.window.statusBar().showMessage(message)
        self.failed.emit(message)
        if self.window.dialogs:
            QMessageBox.warning(self.window, "Segmentation failed", message)


def install_segment_action(window: Workstation) -> SegmentAction:
    """The action in a toolbar and the Tools menu; the worker stops when the window closes."""
    segment = SegmentAction(window)
    toolbar = window.addToolBar("AI")
    toolbar.setObjectName("AIToolBar")
    toolbar.addAction(segment.action)
    for action in window.menuBar().actions():
        menu = action.menu()
        if action.text().replace("&", "") == "Tools" and isinstance(menu, QMenu):
            menu.addSeparator()
            menu.addAction(segment.action)
            break
    return segment
