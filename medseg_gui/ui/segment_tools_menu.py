"""The Segment menu (whole-segment tools) and the correction-effort readout.

Each tool is one or more Qt-free functions of :mod:`medseg_gui.editing`, each returning a
:class:`~medseg_gui.editing.base.Change`. They run on the thread pool against a *copy* of the
label map (each step sees the one before written into the copy), and the changes are committed
on the GUI thread through :meth:`EditingController.apply` inside one
:meth:`EditingController.group`, so a tool is one undo step however many steps it has, and the
overlay, 3D view and segment panel follow through the usual signals. A result is dropped when
the label map was edited (or the study changed) while the tool ran: applying it would undo
those edits.

The readout in the status bar ("+N / -M voxels vs AI draft, Dice 0.93, 2 min editing") is
recomputed on a debounced timer after edits, in a worker (it scans the whole label map twice).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from PySide6.QtCore import QObject, QThreadPool, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QGridLayout, QInputDialog, QLabel, QToolButton

from medseg_gui.core.progress import Progress
from medseg_gui.core.segmentation import Segmentation
from medseg_gui.editing import SegmentEditor, ViewAxis
from medseg_gui.editing.base import Change
from medseg_gui.editing.constraints import PaintConstraint
from medseg_gui.editing.effort import Effort, correction_effort
from medseg_gui.editing.interpolate import fill_between_slices
from medseg_gui.editing.morphology import (
    closing,
    grow_shrink,
    keep_largest_island,
    median_smooth,
    remove_small_islands,
    split_islands,
)
from medseg_gui.ui.workers import Task

if TYPE_CHECKING:
    from medseg_gui.ui.workstation import Workstation

# The effort readout is recomputed this long after the last edit (ms).
EFFORT_DEBOUNCE_MS = 500


@dataclass(frozen=True)
class ToolInputs:
    """Everything a tool reads, captured on the GUI thread when it starts."""

    seg: Segmentation  # a private copy
    label: int
    value: float
    axis: ViewAxis
    image: npt.NDArray[Any] | None
    constraint: PaintConstraint


Step = Callable[[ToolInputs, Progress], Change]


@dataclass(frozen=True)
class SegmentTool:
    """One menu entry: ``run``, then each of ``then`` on the result, as one undo step;
    ``ask`` is ``(prompt, default, minimum, maximum)`` for the number they share."""

    key: str
    text: str
    run: Step
    ask: tuple[str, float, float, float] | None = None
    then: tuple[Step, ...] = ()

    def changes(self, inputs: ToolInputs, progress: Progress) -> list[Change]:
        """The changes of every step, each computed on ``inputs.seg`` (a private copy) with
        the steps before it written in."""
        out: list[Change] = []
        for step in (self.run, *self.then):
            change = step(inputs, progress)
            change.write(inputs.seg)
            out.append(change)
        return out


def _smooth(t: ToolInputs, _p: Progress) -> Change:
    return median_smooth(t.seg, t.label, t.value)


def _largest(t: ToolInputs, _p: Progress) -> Change:
    return keep_largest_island(t.seg, t.label)


SMOOTH_ASK = ("Median filter size (mm):", 1.0, 0.1, 50.0)
TOOLS: tuple[SegmentTool, ...] = (
    SegmentTool("fill", "Fill between slices",
                lambda t, p: fill_between_slices(t.seg, t.label, t.axis, image=t.image,
                                                 constraint=t.constraint, progress=p)),
    SegmentTool("largest", "Keep largest island", _largest),
    SegmentTool("small", "Remove small islands",
                lambda t, _p: remove_small_islands(t.seg, t.label, t.value),
                ("Remove islands smaller than (mm³):", 100.0, 0.0, 1e7)),
    SegmentTool("split", "Split islands", lambda t, _p: split_islands(t.seg, t.label)),
    SegmentTool("smooth", "Smooth (median)", _smooth, SMOOTH_ASK),
    # A cleanup radiologists do after the AI draft: smoothing can leave specks, one Ctrl+Z.
    SegmentTool("cleanup", "Smooth + keep largest", _smooth, SMOOTH_ASK, then=(_largest,)),
    SegmentTool("closing", "Closing",
                lambda t, _p: closing(t.seg, t.label, t.value),
                ("Closing radius (mm):", 2.0, 0.1, 50.0)),
    SegmentTool("grow", "Grow / shrink",
                lambda t, _p: grow_shrink(t.seg, t.label, t.value),
                ("Margin (mm, negative shrinks):", 1.0, -50.0, 50.0)),
)


def effort_text(effort: Effort, baseline: str = "AI draft") -> str:
    """``+N / -M voxels vs AI draft, Dice 0.93, 2 min editing`` (``baseline``: what the
    session started from, "AI draft", "opened mask" or "nothing": then no Dice, which against
    an empty start means nothing)."""
    seconds = effort.active_seconds
    time_text = f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.0f} min"
    if baseline == "nothing":
        return f"+{effort.voxels_added:,} voxels drawn, {time_text} editing"
    return (f"+{effort.voxels_added:,} / -{effort.voxels_removed:,} voxels vs {baseline}, "
            f"Dice {effort.dice:.2f}, {time_text} editing")


class SegmentTools(QObject):
    """The Segment menu, its buttons in the Tools dock, and the effort readout.

    Signals
    -------
    done(str)
        A tool finished (its key), whether or not it changed anything.
    effortUpdated(str)
        The readout's new text.
    """

    done = Signal(str)
    effortUpdated = Signal(str)

    def __init__(self, window: Workstation) -> None:
        super().__init__(window)
        self.window = window
        self.controller = window.editing
        # While a Segment menu tool runs, the slice views' tools wait (and it waits for them).
        self.controller.toolbox.busy_sources.append(lambda: self.busy)
        self._task: Task | None = None
        self._running: tuple[SegmentTool, SegmentEditor, int] | None = None
        self._generation = 0  # edits committed; a tool's result must not undo newer ones
        self.menu = window.menuBar().addMenu("&Segment")
        self.actions: dict[str, QAction] = {}
        for tool in TOOLS:
            action = QAction(tool.text + ("..." if tool.ask else ""), self)
            action.triggered.connect(lambda _c=False, k=tool.key: self.run(k))
            self.menu.addAction(action)
            self.actions[tool.key] = action
        self._add_buttons()
        self.effort_label = QLabel("")
        self.effort_label.setToolTip("Correction effort versus the mask the editing session "
                                     "started from: the AI draft, or the mask you opened")
        window.statusBar().addPermanentWidget(self.effort_label)
        self._effort_task: Task | None = None
        self._effort_again = False
        self._effort_timer = QTimer(self, singleShot=True, interval=EFFORT_DEBOUNCE_MS)
        self._effort_timer.timeout.connect(self.update_effort)
        self.controller.edited.connect(self._on_edited)
        self.controller.sessionChanged.connect(self._on_session)
        self.controller.tableChanged.connect(self._enable)
        self._enable()

    def _add_buttons(self) -> None:
        """A grid of the tools at the top of the Tools dock's column (when the dock has one)."""
        body = self.window.tool_panel.widget()
        column = body.layout() if body is not None else None
        insert = getattr(column, "insertLayout", None)
        if not callable(insert):
            return
        grid = QGridLayout()
        for n, tool in enumerate(TOOLS):
            button = QToolButton()
            button.setDefaultAction(self.actions[tool.key])
            button.setMinimumWidth(80)
            grid.addWidget(button, n // 3, n % 3)
        insert(1, grid)

    # -- state -----------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._task is not None

    def _enable(self) -> None:
        editor = self.controller.editor
        ok = not self.busy and editor is not None and editor.active_label is not None
        for action in self.actions.values():
            action.setEnabled(ok)

    def _on_edited(self, _edit: object, _undo: bool) -> None:
        self._generation += 1
        self._effort_timer.start()

    def _on_session(self) -> None:
        self._generation += 1
        self._effort_timer.start()

    def axis(self) -> ViewAxis:
        """The label map axis of the slice view that last had focus (axial for the 3D view)."""
        layout = self.window.view_layout
        panel = layout.panels[layout.focused]
        if panel in self.window.views.values():
            return self.controller.view_axis(panel)  # type: ignore[arg-type]
        return ViewAxis.AXIAL

    # -- tools -----------------------------------------------------------------------------------
    def run(self, key: str, value: float | None = None) -> bool:
        """Start tool ``key`` on the active segment; ``value`` skips the input dialog.

        Returns False when it did not start (busy, nothing to edit, input cancelled).
        """
        tool = next(t for t in TOOLS if t.key == key)
        c = self.controller
        editor = c.editor
        if c.busy or editor is None or editor.active_label is None:
            self.window.statusBar().showMessage(f"{tool.text}: no segment to work on", 5000)
            return False
        if value is None and tool.ask is not None:
            prompt, default, lo, hi = tool.ask
            value = default
            if self.window.dialogs:
                value, ok = QInputDialog.getDouble(self.window, tool.text, prompt, default,
                                                   lo, hi, 1)
                if not ok:
                    return False
        if editor.stroking:
            c._committed(editor.end_stroke())
        seg = editor.segmentation
        copy = Segmentation(seg.labelmap.copy(), seg.geometry, list(seg.segments))
        inputs = ToolInputs(copy, editor.active_label, float(value or 0.0), self.axis(),
                            editor.image, c.brush.constraint)
        task = Task(lambda progress: tool.changes(inputs, progress))
        task.signals.finished.connect(self._on_done)
        task.signals.failed.connect(self._on_failed)
        task.signals.cancelled.connect(self._on_cancelled)
        task.signals.progress.connect(self._on_progress)
        self._task, self._running = task, (tool, editor, self._generation)
        self._enable()
        self.window.statusBar().showMessage(f"{tool.text} ...")
        QThreadPool.globalInstance().start(task)
        return True

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _finish(self, task: Task) -> tuple[SegmentTool, SegmentEditor, int] | None:
        if task is not self._task:
            return None
        running, self._task, self._running = self._running, None, None
        self._enable()
        return running

    def _on_progress(self, fraction: float, message: str) -> None:
        if self._running is not None:
            self.window.statusBar().showMessage(f"{message} ({fraction:.0%})")

    def _on_done(self, task: Task, changes: list[Change]) -> None:
        running = self._finish(task)
        if running is None:
            return
        tool, editor, generation = running
        bar = self.window.statusBar()
        if editor is not self.controller.editor or generation != self._generation:
            bar.showMessage(f"{tool.text}: the segmentation changed meanwhile; run it again",
                            10000)
            self.done.emit(tool.key)
            return
        with self.controller.group(tool.text):
            edits = [self.controller.apply(change) for change in changes]
        if not any(edits):
            bar.showMessage(f"{tool.text}: nothing to change", 5000)
        else:
            bar.showMessage(f"{tool.text} done (Ctrl+Z undoes it)", 5000)
        self.done.emit(tool.key)

    def _on_failed(self, task: Task, exc: BaseException) -> None:
        running = self._finish(task)
        if running is not None:
            self.window.show_error(f"{running[0].text} failed: {exc}")
            self.done.emit(running[0].key)

    def _on_cancelled(self, task: Task) -> None:
        running = self._finish(task)
        if running is not None:
            self.window.statusBar().showMessage(f"{running[0].text} cancelled", 5000)
            self.done.emit(running[0].key)

    # -- effort readout --------------------------------------------------------------------------
    def update_effort(self) -> None:
        """Recompute the readout now (in a worker); again when one is already running."""
        editor = self.controller.editor
        if editor is None:
            self._show_effort("")
            return
        if self._effort_task is not None:
            self._effort_again = True
            return
        current = editor.segmentation.labelmap.copy()
        draft = editor.draft if editor.draft is not None else np.zeros_like(current)
        spacing = editor.segmentation.geometry.spacing
        intervals = list(editor.intervals)
        task = Task(lambda _p: correction_effort(draft, current, spacing, intervals=intervals))
        task.signals.finished.connect(self._on_effort)
        task.signals.failed.connect(self._on_effort_failed)
        self._effort_task = task
        QThreadPool.globalInstance().start(task)

    def _on_effort(self, task: Task, effort: Effort) -> None:
        if task is not self._effort_task:
            return
        self._effort_task = None
        if self._effort_again:
            self._effort_again = False
            self.update_effort()
        else:
            self._show_effort(effort_text(effort, self.controller.baseline))

    def _on_effort_failed(self, task: Task, exc: BaseException) -> None:
        if task is self._effort_task:
            self._effort_task = None
            self._show_effort("")

    def _show_effort(self, text: str) -> None:
        self.effort_label.setText(text)
        self.effortUpdated.emit(text)


def install_segment_tools(window: Workstation) -> SegmentTools:
    """The Segment menu, its buttons in the Tools dock and the status bar's effort readout."""
    return SegmentTools(window)


__all__ = ["TOOLS", "SegmentTool", "SegmentTools", "effort_text", "install_segment_tools"]

