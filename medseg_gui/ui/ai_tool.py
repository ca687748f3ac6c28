"""The AI prompt tool: clicks and drags in the slice views become prompts for the promptable model.

Mouse bindings (in any slice view): a left click is a positive point; shift+click or a right
*click* a negative point (a right *drag* stays window/level); a left drag a box, the rectangle
between press and release on the current slice; ctrl+drag a scribble, ctrl+shift+drag a
negative one. Every gesture becomes data (:mod:`medseg_gui.inference.prompts`, LPS mm); the
Qt-free code does the rest:

- :class:`~medseg_gui.editing.ai_prompt.PromptSession` is the object being segmented in the
  active segment. A new one starts when the active segment changes or after Accept.
- The model (``prompt-unet``) is loaded once, in the background, when the tool is first chosen,
  and kept: loading takes about a second, a prompt about half of one on the CPU.
- Each prompt is a job: ``session.request`` (it labels connected parts) and ``predict`` run on
  the thread pool; ``session.commit`` writes the result on the GUI thread through the editing
  controller's ``apply`` under the brush's paint rules, so "Paint over other segments" and
  locked segments hold, and the prompt is one undo step named after it.
- One job runs at a time. A prompt that arrives while the same session's job runs supersedes
  it: that job is cancelled, its result dropped when it arrives, and one job holding both
  prompts runs next, so the GUI never waits and the final mask answers every prompt.
- While a job runs or waits, other edits are blocked (:attr:`AITool.busy`, like a fill).

:class:`AIPromptSection` is the "AI prompts" part of the Tools dock.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, Qt, QThreadPool, Signal
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from medseg_gui.editing.ai_prompt import PromptRequest, PromptSession
from medseg_gui.editing.history import Edit
from medseg_gui.editing.tools import IGNORED, Button, Modifier, PointerEvent, Reply
from medseg_gui.inference.models import DEFAULT_PROMPT_MODEL
from medseg_gui.inference.prompts import PromptError, Prompts, box, check_prompts, point, scribble
from medseg_gui.io.errors import LoadError
from medseg_gui.rendering.prompt_markers import PromptMarkers
from medseg_gui.ui.slice_widget import CLICK_PX
from medseg_gui.ui.workers import Task

if TYPE_CHECKING:
    from medseg_gui.inference.backend import Backend
    from medseg_gui.inference.interactive import PromptResult
    from medseg_gui.inference.model_card import ModelCard
    from medseg_gui.ui.editing_tools import EditingController

MODEL = DEFAULT_PROMPT_MODEL
# Short lines, no word wrap: a wrapped label in a dock is given too little height and clipped.
HINT = ("Click: on the object    Shift+click, right click: not on it\n"
        "Drag: a box on this slice    Ctrl+drag: scribble (+Shift: not)\n"
        "Enter: accept the object    Ctrl+Z: undo the last prompt")
FIGURE_CHARS = 60


@dataclass
class _Job:
    """Prompts of one session waiting for, or in, one model run."""

    session: PromptSession
    new: Prompts
    task: Task | None = None
    superseded: bool = False


@dataclass
class _Gesture:
    widget: Any  # the SliceViewWidget the gesture began in (the event's view)
    button: Button
    start: tuple[float, float]  # pixels
    modifiers: Modifier
    path: list[np.ndarray] = field(default_factory=list)
    moved: bool = False

    def began_in(self, event: PointerEvent) -> bool:
        return event.view is self.widget


def recorded_figure(card: ModelCard) -> str:
    """One line from ``card.metrics["interactive"]`` (what the evaluation recorded), or
    ``"no recorded figures"``."""
    data = card.metrics.get("interactive", {}) if isinstance(card.metrics, dict) else {}
    if not data:
        return "no recorded figures"
    if isinstance(data, dict) and isinstance(data.get("summary"), str):
        return str(data["summary"])
    parts: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix} {k}".strip(), v)
        elif isinstance(value, float | int) and not isinstance(value, bool):
            parts.append(f"{prefix} {value:.3g}")
        elif isinstance(value, str) and len(value) <= 40:
            parts.append(f"{prefix}: {value}")

    walk("", data)
    if not parts:
        return "figures recorded (see the tooltip)"
    return "; ".join(parts[:4]) + (" ..." if len(parts) > 4 else "")


class AITool(QObject):
    """The AI tool's state for an :class:`EditingController` (see the module docstring).

    Signals
    -------
    statusChanged(str)
        A new one-line status ("AI: running...", "AI: 412 ms, 1 pass").
    modelChanged()
        The model finished loading (or failed to).
    promptsChanged()
        The prompts shown (the session's and those waiting) changed.
    """

    statusChanged = Signal(str)
    modelChanged = Signal()
    promptsChanged = Signal()

    def __init__(self, controller: EditingController) -> None:
        super().__init__(controller)
        self.controller = controller
        self.window = controller.window
        self.model_spec = MODEL
        self.card: ModelCard | None = None
        self.backend: Backend | None = None
        self.load_error = ""
        self.session: PromptSession | None = None
        self.status = ""
        self.last_result: PromptResult | None = None
        self.last_seconds = 0.0
        self.superseded = 0  # jobs dropped for a newer prompt (the tests read it)
        self._stale = False  # another version was promoted since the model loaded
        self._load_task: Task | None = None
        self._running: _Job | None = None
        self._queue: list[_Job] = []
        self._depth: dict[int, int] = {}  # id(edit) -> undo-history length right after it
        self._editing = False  # our own commit or reset is going through the controller
        self._gesture: _Gesture | None = None
        self.markers = {o: PromptMarkers(w.view) for o, w in self.window.views.items()}
        for m in self.markers.values():
            m.set_visible(False)
        controller.edited.connect(self._on_edited)
        controller.tableChanged.connect(self._on_table)
        controller.sessionChanged.connect(self._on_session)
        controller.toolChanged.connect(self._on_tool)

    # -- state -----------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """A prompt is being predicted or waits: other edits must wait (not our own commit)."""
        return (self._running is not None or bool(self._queue)) and not self._editing

    @property
    def running(self) -> bool:
        """A prediction is on the thread pool now."""
        return self._running is not None

    @property
    def loading(self) -> bool:
        """The model is being loaded."""
        return self._load_task is not None

    def shown_prompts(self) -> Prompts:
        """The current session's prompts plus those still waiting for their result."""
        s = self.session
        if s is None:
            return Prompts()
        out = s.prompts
        jobs = ([self._running] if self._running is not None else []) + self._queue
        for job in jobs:
            if job.session is s and not job.superseded:
                out = out.add(job.new)
        return out

    def _say(self, text: str, *, timeout_ms: int = 0) -> None:
        self.status = text
        self.window.statusBar().showMessage(text, timeout_ms)
        self.statusChanged.emit(text)

    def _show_prompts(self) -> None:
        """Markers of :meth:`shown_prompts`; the views are redrawn only when they changed (a
        commit leaves them as they were, and the commit itself redraws the edited views)."""
        prompts = self.shown_prompts()
        if any(m.prompts != prompts for m in self.markers.values()):
            for m in self.markers.values():
                m.set_prompts(prompts)
            self.window.render_all()
        self.promptsChanged.emit()

    # -- the model -------------------------------------------------------------------------
    def ensure_model(self) -> None:
        """Start loading the model in the background unless it is loaded or loading."""
        if self.backend is not None or self._load_task is not None:
            return
        spec = self.model_spec

        def work(_progress: Any) -> tuple[ModelCard, Backend]:
            from medseg_gui.inference.backend import open_backend
            from medseg_gui.inference.models import resolve_model

            card = resolve_model(spec)
            if not card.promptable:
                raise LoadError(card.folder, f"model {card.ref} is automatic, not promptable")
            return card, open_backend(card, "auto")

        task = Task(work)
        task.signals.finished.connect(self._on_loaded)
        task.signals.failed.connect(self._on_load_failed)
        self._load_task, self.load_error = task, ""
        self._say(f"AI: loading {spec} ...")
        self.modelChanged.emit()
        QThreadPool.globalInstance().start(task)

    def _on_loaded(self, task: Task, out: tuple[ModelCard, Backend]) -> None:
        if task is not self._load_task:
            return
        self._load_task = None
        self.card, self.backend = out
        self._say(f"AI: {self.card.ref} ready ({self.backend.name} on {self.backend.device})",
                  timeout_ms=5000)
        self.modelChanged.emit()
        self._start_next()

    def _on_load_failed(self, task: Task, exc: BaseException) -> None:
        if task is not self._load_task:
            return
        self._load_task, self._queue = None, []
        self.load_error = str(exc) or type(exc).__name__
        self._show_prompts()
        self._say(f"AI: model not available: {self.load_error}")
        self.modelChanged.emit()
        self.window.show_error(f"The AI model could not be loaded: {self.load_error}")

    def shutdown(self) -> None:
        """The window closes: stop the run (its result is dropped) and free the model."""
        self._queue = []
        if self._running is not None and self._running.task is not None:
            self._running.superseded = True
            self._running.task.cancel()
        elif self.backend is not None:
            self.backend.close()
            self.backend = None

    # -- prompts ---------------------------------------------------------------------------
    def add(self, new: Prompts) -> bool:
        """Queue a prompt for the active segment's object; False (and a status) if refused."""
        c, volume = self.controller, self.window.volume
        if volume is None:
            return False
        if c.toolbox.busy_besides(self):  # a fill or a Segment menu tool
            self._say("AI: wait for the running tool to finish", timeout_ms=5000)
            return False
        name = self.card.labels[0].name if self.card is not None and self.card.labels else ""
        editor = c.ensure_segment(name)
        if editor is None or editor.active_label is None:
            return False
        label = editor.active_label
        if label in c.locked:
            row = editor.segmentation.segment(label)
            self._say(f"AI: segment {row.name!r} is locked; unlock it in the Segments list",
                      timeout_ms=8000)
            return False
        if not volume.geometry.same_grid(editor.segmentation.geometry):
            self._say("AI: the segmentation is not on the image's grid; the AI tool needs it "
                      "there (open the labels resampled to the study)")
            return False
        try:
            check_prompts(new, volume.geometry, has_prior=True)
        except PromptError as exc:
            self._say(f"AI: {exc}", timeout_ms=10000)
            return False
        if self.session is None or self.session.label != label:
            self.session = PromptSession(label)
        s, running = self.session, self._running
        if self._queue and self._queue[-1].session is s:
            self._queue[-1].new = self._queue[-1].new.add(new)
        elif not self._queue and running is not None and running.session is s \
                and not running.superseded and running.task is not None:
            running.superseded = True  # its result would miss this prompt: run both instead
            running.task.cancel()
            self.superseded += 1
            self._queue.append(_Job(s, running.new.add(new)))
        else:
            self._queue.append(_Job(s, new))
        self._show_prompts()
        self._start_next()
        return True

    def model_promoted(self, ref: str) -> None:
        """A version of ``ref``'s model became active (a fine-tune promoted, a rollback): the
        next prompt loads it, once no prediction uses the loaded one."""
        if self.card is not None and ref.partition(":")[0] == self.card.model_id \
                and ref != self.card.ref:
            self._stale = True
            self._say(f"AI: {ref} is now active; the next prompt loads it", timeout_ms=8000)

    def _start_next(self) -> None:
        if self._running is not None or not self._queue:
            return
        if self._stale and self.backend is not None:
            self._stale = False
            self.backend.close()
            self.card, self.backend = None, None
        if self.backend is None or self.card is None:
            self.ensure_model()  # the queue runs when the model is there
            return
        editor, volume = self.controller.editor, self.window.volume
        if editor is None or volume is None:
            self._queue = []
            return
        job = self._queue.pop(0)
        session, new, card, backend = job.session, job.new, self.card, self.backend
        labelmap, geometry = editor.segmentation.labelmap, editor.segmentation.geometry

        def work(progress: Any) -> tuple[PromptRequest, PromptResult, float]:
            from medseg_gui.inference.interactive import predict

            t0 = time.perf_counter()
            request = session.request(new, labelmap, geometry)
            result = predict(volume, card, backend, request.prompts, prior=request.prior,
                             progress=progress)
            return request, result, time.perf_counter() - t0

        task = Task(work)
        task.signals.finished.connect(self._on_done)
        task.signals.failed.connect(self._on_failed)
        task.signals.cancelled.connect(self._on_cancelled)
        task.signals.progress.connect(self._on_progress)
        job.task, self._running = task, job
        self._say("AI: running...")
        QThreadPool.globalInstance().start(task)

    def _on_progress(self, fraction: float, message: str) -> None:
        if self._running is not None and message.startswith("AI pass") and fraction > 0:
            self._say(f"AI: running... ({message[3:]}: the object reaches past the crop)")

    def _finish(self, task: Task) -> _Job | None:
        job = self._running
        if job is None or job.task is not task:
            return None
        self._running = None
        return job

    def _on_done(self, task: Task, out: tuple[PromptRequest, PromptResult, float]) -> None:
        job = self._finish(task)
        if job is None:
            return
        editor = self.controller.editor
        if not job.superseded and editor is not None:
            request, result, seconds = out
            self.last_result, self.last_seconds = result, seconds
            self._editing = True
            try:
                edit = job.session.commit(request, result, editor.segmentation.labelmap,
                                          self.controller.apply,
                                          constraint=self.controller.brush.constraint,
                                          image=editor.image)
            finally:
                self._editing = False
            if edit is not None:
                self._depth[id(edit)] = len(editor.history)
            passes = len(result.passes)
            text = f"AI: {seconds * 1000:.0f} ms, {passes} pass{'es' if passes != 1 else ''}"
            if edit is None and result.voxels:
                text += "; nothing changed (other or locked segments are kept)"
            self._say("; ".join([text, *result.messages]))
        self._show_prompts()
        self._start_next()

    def _on_failed(self, task: Task, exc: BaseException) -> None:
        job = self._finish(task)
        if job is None:
            return
        if not job.superseded:
            message = str(exc) or type(exc).__name__
            if isinstance(exc, LoadError):  # PromptError: a prompt the user can fix
                self._say(f"AI: {message}", timeout_ms=10000)
            else:
                self._say(f"AI: the prompt failed: {message}")
                self.window.show_error(f"AI prompt failed: {message}")
        self._show_prompts()  # its prompts leave the views
        self._start_next()

    def _on_cancelled(self, task: Task) -> None:
        if self._finish(task) is not None:
            self._show_prompts()
            self._start_next()

    # -- session -----------------------------------------------------------------------------
    def accept(self) -> None:
        """Enter: keep the object's mask; the next prompt starts a new object. A run still in
        progress for it is committed to it when it arrives."""
        if self.session is None:
            return
        self.session = None
        self._show_prompts()
        self._say("AI: object accepted; the next prompt starts a new one", timeout_ms=5000)

    def reset(self) -> None:
        """Undo this session's AI steps that are still on top of the undo history, and clear
        its prompts (steps under other edits stay: undoing them would undo those edits too)."""
        s, c = self.session, self.controller
        if s is None:
            return
        if self._running is not None and self._running.session is s \
                and self._running.task is not None:
            self._running.superseded = True
            self._running.task.cancel()
        self._queue = [j for j in self._queue if j.session is not s]
        undone = 0
        editor = c.editor
        self._editing = True
        try:
            while editor is not None and s.edits:
                last = s.edits[-1]
                if len(editor.history) != self._depth.get(id(last)) or \
                        editor.history.undo_name() != last.name:
                    break
                edit = c.undo()  # emits edited -> s.undone(edit)
                if edit is not last:
                    if edit is not None:
                        c.redo()
                    break
                undone += 1
        finally:
            self._editing = False
        kept = len(s.edits)
        self.session = None
        self._show_prompts()
        note = f"; {kept} step(s) under other edits kept" if kept else ""
        self._say(f"AI: reset, undid {undone} AI step(s){note}", timeout_ms=8000)

    def _on_edited(self, edit: Edit, undo: bool) -> None:
        if self.session is None:
            return
        editor = self.controller.editor
        if undo and self.session.undone(edit):
            self._depth.pop(id(edit), None)
            self._show_prompts()
        elif not self._editing and not edit.name.startswith("AI") and editor is not None:
            # the user's brush, eraser, fill ...: later prompts keep what it did
            self.session.edited_by_hand(edit, editor.segmentation.labelmap, undo=undo)
        elif not undo and not self._editing and edit.name.startswith("AI"):
            # A redo of an undone prompt: the session forgot that prompt, so its object mask
            # is stale; the next prompt starts from the label map again.
            self.session = None
            self._show_prompts()

    def _on_table(self) -> None:
        editor = self.controller.editor
        if self.session is not None and (editor is None or
                                         editor.active_label != self.session.label):
            self.session = None  # another segment: another object
            self._show_prompts()

    def _on_session(self) -> None:
        """A new segmentation (or none): every prompt and run belonged to the old one."""
        if self._running is not None and self._running.task is not None:
            self._running.superseded = True
            self._running.task.cancel()
        self._queue, self.session, self._depth = [], None, {}
        self._show_prompts()

    def _on_tool(self, tool: str) -> None:
        active = tool == "ai"
        self.cancel()
        for m in self.markers.values():
            m.set_visible(active)
        if active:
            self.ensure_model()
        self.window.render_all()

    # -- pointer (the controller's ToolBox routes the slice views' events here) -------------
    def press(self, event: PointerEvent) -> Reply:
        """A left or right press starts a gesture: a click is a point, a drag a box or (with
        Ctrl) a scribble. A right press still starts the view's window/level drag."""
        if event.button not in (Button.LEFT, Button.RIGHT):
            return IGNORED
        left = Reply(handled=event.button is Button.LEFT)
        if event.world is None:
            return left
        self._gesture = _Gesture(event.view, event.button, event.screen, event.modifiers,
                                 [np.asarray(event.world)])
        return left

    def _dragged(self, g: _Gesture, event: PointerEvent) -> None:
        (x0, y0), (x, y) = g.start, event.screen
        g.moved |= abs(x - x0) + abs(y - y0) > CLICK_PX

    def move(self, event: PointerEvent) -> Reply:
        g = self._gesture
        if g is None or not g.began_in(event):
            return IGNORED
        self._dragged(g, event)
        if g.button is not Button.LEFT:
            return IGNORED
        if g.moved:
            if event.world is not None:
                g.path.append(np.asarray(event.world))
            marker = self.markers[g.widget.view.orientation]
            if g.modifiers & Modifier.CTRL:
                marker.preview_stroke(g.path, negative=bool(g.modifiers & Modifier.SHIFT))
            else:
                marker.preview_box(g.path[0], g.path[-1])
            g.widget.render_view()
        return Reply(True)

    def release(self, event: PointerEvent) -> Reply:
        g = self._gesture
        if g is None or not g.began_in(event) or event.button is not g.button:
            return IGNORED
        self._gesture = None
        self.markers[g.widget.view.orientation].clear_preview()
        self._dragged(g, event)
        shift = bool(g.modifiers & Modifier.SHIFT)
        if g.button is Button.RIGHT:
            if not g.moved:
                self.add(point(g.path[0], negative=True))
            return IGNORED
        if event.world is not None and g.moved:
            g.path.append(np.asarray(event.world))
        if not g.moved:
            self.add(point(g.path[0], negative=shift))
        elif g.modifiers & Modifier.CTRL:
            self.add(scribble(g.path, negative=shift))
        else:
            self.add(box(g.path[0], g.path[-1]))
        g.widget.render_view()
        return Reply(True)

    def cancel(self) -> bool:
        """Escape: drop the drag in progress; True if there was one."""
        g, self._gesture = self._gesture, None
        if g is None:
            return False
        self.markers[g.widget.view.orientation].clear_preview()
        g.widget.render_view()
        return True


class AIPromptSection(QGroupBox):
    """The Tools dock's "AI prompts" section: model, figures, hint, status, Reset and Accept."""

    def __init__(self, ai: AITool) -> None:
        super().__init__("AI prompts")
        self.ai = ai
        column = QVBoxLayout(self)
        self.model = QLabel()
        self.hint = QLabel(HINT)
        self.hint.setStyleSheet("color: #909090;")
        self.status = QLabel("")
        self.status.setWordWrap(True)  # messages can be long; three lines are kept for them
        self.status.setMinimumHeight(3 * self.status.fontMetrics().lineSpacing() + 4)
        self.status.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        row = QHBoxLayout()
        self.reset_button = QPushButton("Reset")
        self.reset_button.setToolTip("Undo this object's AI steps and clear its prompts")
        self.accept_button = QPushButton("Accept (Enter)")
        self.accept_button.setToolTip("Keep the mask; the next prompt starts a new object")
        row.addWidget(self.reset_button)
        row.addWidget(self.accept_button)
        for w in (self.model, self.hint, self.status):
            column.addWidget(w)
        column.addLayout(row)
        self.reset_button.clicked.connect(ai.reset)
        self.accept_button.clicked.connect(ai.accept)
        ai.modelChanged.connect(self.show_model)
        ai.statusChanged.connect(self.status.setText)
        ai.promptsChanged.connect(self._enable)
        self.show_model()
        self._enable()

    def show_model(self) -> None:
        ai = self.ai
        if ai.card is not None:
            backend = f" ({ai.backend.name} on {ai.backend.device})" if ai.backend else ""
            figure = recorded_figure(ai.card)
            if len(figure) > FIGURE_CHARS:
                figure = figure[:FIGURE_CHARS - 3] + "..."
            self.model.setText(f"Model {ai.card.ref}{backend}\n{figure}")
            figures = ai.card.metrics.get("interactive", {})
            self.model.setToolTip(json.dumps(figures, indent=1)[:2000] if figures else "")
        elif ai.load_error:
            self.model.setText(f"Model {ai.model_spec}: not available")
            self.model.setToolTip(ai.load_error)
        else:
            self.model.setText(f"Model {ai.model_spec}: loading when the tool is chosen ...")

    def _enable(self) -> None:
        has = self.ai.session is not None
        self.reset_button.setEnabled(has)
        self.accept_button.setEnabled(has)
