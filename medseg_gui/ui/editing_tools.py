"""The editing tools in the slice views: Qt mouse events in, :mod:`medseg_gui.editing.tools` out.

The tools' logic is Qt-free (:class:`~medseg_gui.editing.tools.ToolBox` and its tools take a
:class:`~medseg_gui.editing.tools.PointerEvent`: the view, the label map's axis across it, the
continuous ``(i, j, k)`` under the pointer, buttons and modifiers). This controller only turns a
``QMouseEvent`` into those values, hands them to the toolbox, and does what its reply asks of
the GUI: redraw, commit a change, run a job on a worker thread, show a message. Other tools
plug into the same toolbox (the AI prompt tool of :mod:`medseg_gui.ui.ai_tool` is registered
as ``"ai"``; a ruler can be).

After a stamp only the views whose current slice crosses the changed box are redrawn: the
painted view at once (in the mouse handler, so the overlay is on screen when the event
returns), the others on a short timer. The label image shares the label map's buffer, so a
redraw reslices one slice and re-uploads only that.

One :class:`SegmentEditor` (with its undo history and crash journal) lives per segmentation;
:meth:`EditingController.set_segmentation` starts a new session.

Locked segments (:attr:`EditingController.locked`, toggled in the Segments list) go into every
tool's :class:`~medseg_gui.editing.constraints.PaintConstraint`, and a locked active segment
takes no paint, fill, scissors or AI prompt at all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QMouseEvent, QWheelEvent

from medseg_gui.core.segmentation import Segmentation, SegmentSource
from medseg_gui.editing import BrushSettings, BrushShape, Edit, SegmentEditor, ViewAxis
from medseg_gui.editing.base import Change, Region
from medseg_gui.editing.journal import start_session_journal
from medseg_gui.editing.tools import (
    EDIT_TOOLS,
    Button,
    Modifier,
    PointerEvent,
    Reply,
    Tool,
    ToolBox,
)
from medseg_gui.rendering.edit_feedback import region_on_slice, view_axis_of
from medseg_gui.ui.ai_tool import AITool
from medseg_gui.ui.brush_cursors import BrushCursors
from medseg_gui.ui.measure_tool import MeasureTool
from medseg_gui.ui.region_tools import RegionTools

if TYPE_CHECKING:
    from medseg_gui.ui.slice_widget import SliceViewWidget
    from medseg_gui.ui.viewer_window import ViewerWindow

MIN_BRUSH_MM, MAX_BRUSH_MM = 0.5, 200.0
NOTHING = "nothing"  # the effort baseline of a segmentation that started empty
# Views other than the painted one follow at most this often while painting (ms).
OTHER_VIEWS_MS = 40
# Volumes, the 3D view and other slow followers update this long after the last edit (ms).
DEBOUNCE_MS = 400


BRUSH_TOOLS = (Tool.PAINT, Tool.ERASE)
GESTURE_TOOLS = (Tool.PAINT, Tool.ERASE, Tool.SCISSORS)  # a press-drag-release in one view
_BUTTONS = {Qt.MouseButton.LeftButton: Button.LEFT, Qt.MouseButton.RightButton: Button.RIGHT,
            Qt.MouseButton.MiddleButton: Button.MIDDLE}
_MODIFIERS = {Qt.KeyboardModifier.ShiftModifier: Modifier.SHIFT,
              Qt.KeyboardModifier.ControlModifier: Modifier.CTRL,
              Qt.KeyboardModifier.AltModifier: Modifier.ALT}


class EditingController(QObject):
    """Tool state and the mouse-to-editor glue for every slice view of the main window.

    Signals
    -------
    toolChanged(str)
        The new :class:`Tool` value.
    brushChanged()
        Size, shape or constraint changed.
    edited(object, bool)
        An :class:`Edit` was committed (``bool``: it was an undo), for volumes and the 3D view.
    tableChanged()
        The segment table (names, colours, rows) or the active segment changed.
    sessionChanged()
        A new segmentation (or none) is being edited.
    settled()
        Edits paused (debounced): time for slow followers (the 3D view's surfaces).
    gestureChanged(bool)
        A stroke or lasso started (True) or ended: slow redraws (the 3D view) wait meanwhile.
    """

    toolChanged = Signal(str)
    brushChanged = Signal()
    edited = Signal(object, bool)
    tableChanged = Signal()
    sessionChanged = Signal()
    settled = Signal()
    gestureChanged = Signal(bool)

    def __init__(self, window: ViewerWindow) -> None:
        super().__init__(window)
        self.window = window
        self.toolbox = ToolBox()  # the tools' Qt-free state and logic
        self.hidden: set[int] = set()
        self.unsaved = False  # edits (or recovered edits) not yet exported
        self.baseline = "AI draft"  # what the effort readout compares with (set per session)
        self._gesture_view: SliceViewWidget | None = None  # the view of the gesture going on
        self._dirty: set[SliceViewWidget] = set()
        self.cursors = BrushCursors(window.views)
        self.regions = RegionTools(self)  # the fill's worker, the scissors' lasso line
        self.ai = AITool(self)  # the promptable model, a tool beside the others
        self.toolbox.register(Tool.AI, self.ai)
        self.measure = MeasureTool(self)  # rulers and the RECIST axes' end points
        self.toolbox.register(Tool.RULER, self.measure)
        for widget in window.views.values():
            widget.tool = self
        self._others = QTimer(self, singleShot=True, interval=OTHER_VIEWS_MS)
        self._others.timeout.connect(self._draw_others)
        self._slow = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._slow.timeout.connect(self._notify_slow_followers)
        window.installEventFilter(self)

    @property
    def _painting(self) -> SliceViewWidget | None:
        return self._gesture_view

    @_painting.setter
    def _painting(self, widget: SliceViewWidget | None) -> None:
        was, self._gesture_view = self._gesture_view is not None, widget
        if was != (widget is not None):
            self.gestureChanged.emit(widget is not None)

    # -- state kept in the toolbox --------------------------------------------------------------
    @property
    def editor(self) -> SegmentEditor | None:
        return self.toolbox.editor

    @editor.setter
    def editor(self, editor: SegmentEditor | None) -> None:
        self.toolbox.editor = editor

    @property
    def tool(self) -> Tool:
        return Tool(self.toolbox.active)

    @property
    def brush(self) -> BrushSettings:
        return self.toolbox.brush

    @property
    def locked(self) -> set[int]:
        """Segments no tool may change (not an undo step)."""
        return self.toolbox.locked

    # -- session -------------------------------------------------------------------------------
    @property
    def segmentation(self) -> Segmentation | None:
        return self.editor.segmentation if self.editor is not None else None

    @property
    def has_edits(self) -> bool:
        """Whether the current session changed anything (the AI must not silently replace it)."""
        return self.editor is not None and (self.unsaved or bool(self.editor.intervals))

    def set_segmentation(self, seg: Segmentation | None) -> None:
        """Start editing ``seg`` (called by the main window), ending the previous session."""
        if self.editor is not None and seg is self.editor.segmentation:
            return
        self.close_session()
        self.hidden.clear()
        if self.locked:
            self.locked.clear()
            self.set_brush(constraint=self.brush.constraint)
        self.unsaved = False
        if seg is not None:
            vol = self.window.volume
            image = vol.array if vol is not None and vol.geometry.same_grid(seg.geometry) \
                else None
            journal = start_session_journal(vol, seg)
            if journal is None:
                self.window.statusBar().showMessage("Edits cannot be journaled: no recovery")
            self.editor = SegmentEditor(seg, image, journal=journal, draft=seg.labelmap.copy())
            # What the effort readout compares with: the AI's mask, whatever was opened, or
            # nothing (a segmentation started empty, e.g. by a brush stroke or an AI prompt).
            self.baseline = "AI draft" if any(
                s.source is SegmentSource.AUTOMATIC for s in seg.segments) else \
                "opened mask" if seg.labelmap.any() else NOTHING
            self.editor.add_listener(self._on_region)
        self.sessionChanged.emit()
        self.tableChanged.emit()

    def close_session(self) -> None:
        """Finish the current session; its journal stays recoverable if it holds edits."""
        editor, self.editor = self.editor, None
        if editor is None:
            return
        if editor.stroking:
            editor.end_stroke()
        if editor.journal is not None:
            # Edits not yet exported stay offered for recovery at the next start.
            editor.journal.close(clean=not (self.unsaved or editor.intervals))
            editor.journal = None

    def ensure_segment(self, name: str = "") -> SegmentEditor | None:
        """The editor, creating an empty segmentation and a first segment when needed."""
        if self.editor is None:
            vol = self.window.volume
            if vol is None:
                return None
            self.window.set_segmentation(Segmentation.empty(vol.geometry), force=True)
        if self.editor is not None and self.editor.active_label is None:
            self.add_segment(name)
        return self.editor

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.window and event.type() == QEvent.Type.Close:
            self.ai.shutdown()
            self.close_session()
        return False

    # -- tool and brush state ----------------------------------------------------------------
    def set_tool(self, tool: Tool | str) -> None:
        self.cancel()
        self.toolbox.active = Tool(tool).value
        if self.tool not in BRUSH_TOOLS:
            self.cursors.hide()
        self._style_cursors()
        self.toolChanged.emit(self.tool.value)

    def set_brush(self, **changes: Any) -> None:
        """Change brush fields (``diameter_mm``, ``shape``, ``constraint``). A new constraint
        always carries the locked segments, whoever built it."""
        if "constraint" in changes:
            changes["constraint"] = dataclasses.replace(changes["constraint"],
                                                        locked=frozenset(self.locked))
        if "diameter_mm" in changes:
            d = float(np.clip(changes["diameter_mm"], MIN_BRUSH_MM, MAX_BRUSH_MM))
            changes["diameter_mm"] = round(d, 1)
        self.toolbox.brush = dataclasses.replace(self.brush, **changes)
        self._style_cursors()
        self.brushChanged.emit()

    def scale_brush(self, steps: float) -> None:
        """Grow (positive) or shrink the brush by 20 % per step ([ and ], shift+wheel)."""
        self.set_brush(diameter_mm=self.brush.diameter_mm * 1.2 ** steps)

    def toggle_shape(self) -> None:
        """Switch between the 2D disc and the 3D sphere."""
        sphere = self.brush.shape is BrushShape.DISC
        self.set_brush(shape=BrushShape.SPHERE if sphere else BrushShape.DISC)

    def set_active(self, label: int) -> None:
        if self.editor is not None and any(s.label == label for s in
                                           self.editor.segmentation.segments):
            self.editor.active_label = label
            self._style_cursors()
            self.tableChanged.emit()

    @property
    def busy(self) -> bool:
        """A fill, an AI prediction or a Segment menu tool is running: other edits wait."""
        return self.toolbox.busy

    def set_locked(self, label: int, locked: bool) -> None:
        """Lock or unlock one segment for every tool (not an edit: no undo step)."""
        (self.locked.add if locked else self.locked.discard)(label)
        self.set_brush(constraint=self.brush.constraint)
        self.tableChanged.emit()

    # -- segment table (undoable through the editor) -------------------------------------------
    def add_segment(self, name: str = "") -> int | None:
        """Add an empty segment and make it active (creating the segmentation if needed)."""
        if self.editor is None:
            self.ensure_segment(name)
            return None if self.editor is None else self.editor.active_label
        # The segment and the first stroke painted into it are one undo step.
        row = self.editor.add_segment(name, with_first_stroke=True)
        self._committed(None)
        return row.label

    def apply(self, change: Change) -> Edit | None:
        """Commit a tool's change as one undo step and redraw."""
        if self.editor is None or self.busy:
            return None
        edit = self.editor.apply(change)
        self._committed(edit)
        return edit

    @contextmanager
    def group(self, name: str) -> Iterator[None]:
        """The :meth:`apply` calls inside the ``with`` block as one undo step ``name``
        (:meth:`SegmentEditor.group`)."""
        if self.editor is None:
            yield
            return
        try:
            with self.editor.group(name):
                yield
        finally:
            self._after_commit()  # the Undo menu names the merged step

    def delete_segment(self, label: int) -> None:
        if self.editor is not None and not self.busy:
            self.hidden.discard(label)
            self.locked.discard(label)
            self._committed(self.editor.delete_segment(label))

    def undo(self) -> Edit | None:
        return self._history_step(undo=True)

    def redo(self) -> Edit | None:
        return self._history_step(undo=False)

    def _history_step(self, *, undo: bool) -> Edit | None:
        if self.editor is None or self.busy:
            if self.ai.busy:
                self.window.statusBar().showMessage("AI: running... (undo waits for it)", 3000)
            return None
        self._painting = None
        edit = self.editor.undo() if undo else self.editor.redo()
        if edit is not None:
            self.flush()
            self.edited.emit(edit, undo)
            self._after_commit()
        return edit

    def _committed(self, edit: Edit | None) -> None:
        self.flush()
        if edit is not None:
            self.edited.emit(edit, False)
        self._after_commit()

    def _after_commit(self) -> None:
        self._style_cursors()
        self.tableChanged.emit()
        self._slow.start()

    def set_visible(self, label: int, visible: bool) -> None:
        """Show or hide one segment in the overlay (not an edit: no undo step)."""
        (self.hidden.discard if visible else self.hidden.add)(label)
        self._refresh_colors()
        self.window.render_all()

    # -- overlay feedback ----------------------------------------------------------------------
    def _on_region(self, region: Region | None) -> None:
        """Editor listener: mark the views whose slice shows the changed box."""
        seg = self.segmentation
        if seg is None:
            return
        if region is None:
            self._refresh_colors()
            self._dirty.update(self.window.views.values())
            return
        for widget in self.window.views.values():
            view = widget.view
            view.labels_modified()
            if view.layout is not None and region_on_slice(view.layout, seg.geometry, region,
                                                           view.slice_index):
                self._dirty.add(widget)

    def _refresh_colors(self) -> None:
        if self.segmentation is None:
            return
        for widget in self.window.views.values():
            widget.view.set_label_colors(self.segmentation.segments, self.hidden)

    def flush(self) -> None:
        """Redraw every view an edit touched (the painted one is drawn by the mouse handler)."""
        self._others.stop()
        dirty, self._dirty = self._dirty, set()
        for widget in dirty:
            widget.render_view()

    def _draw_others(self) -> None:
        """The other views an edit touched, drawn after the painted view's next frame."""
        dirty, self._dirty = self._dirty, set()
        for widget in dirty:
            self.window.frames.request(widget, after=True)

    def _schedule_others(self, painted: SliceViewWidget) -> None:
        self._dirty.discard(painted)
        if self._dirty and not self._others.isActive():
            self._others.start()

    def _notify_slow_followers(self) -> None:
        """Debounced: edits paused (the main window connects the 3D view's surfaces)."""
        self.settled.emit()

    def _style_cursors(self) -> None:
        color: tuple[float, ...] = (1.0, 1.0, 1.0)
        seg = self.segmentation
        if self.tool is not Tool.ERASE and seg is not None and self.editor is not None:
            row = next((s for s in seg.segments if s.label == self.editor.active_label), None)
            if row is not None:
                color = tuple(0.35 + 0.65 * c / 255 for c in row.color)
        self.cursors.style(color, sphere=self.brush.shape is BrushShape.SPHERE)

    # -- mapping ---------------------------------------------------------------------------
    def point_ijk(self, widget: SliceViewWidget, pos: QPointF) -> np.ndarray | None:
        """Continuous ``(i, j, k)`` of the label map under a widget position."""
        seg = self.segmentation
        world = widget.world_at(pos)
        if world is None or seg is None:
            return None
        return np.asarray(seg.geometry.world_to_index(world), dtype=np.float64)

    def view_axis(self, widget: SliceViewWidget) -> ViewAxis:
        """The label map axis a 2D brush is flat across in this view."""
        seg = self.segmentation
        layout = widget.view.layout
        if seg is None or layout is None:
            return ViewAxis.AXIAL
        return ViewAxis(view_axis_of(layout, seg.geometry))

    def pointer_event(self, widget: SliceViewWidget, ev: QMouseEvent,
                      buttons: Qt.MouseButton | None = None) -> PointerEvent:
        """``ev`` as the plain values the tools take (``buttons``: what a move holds)."""
        pos = ev.position()
        held = ev.button() if buttons is None else buttons
        button = Button.NONE
        for qt_button, ours in _BUTTONS.items():
            if held & qt_button:
                button |= ours
        modifiers = Modifier.NONE
        for qt_modifier, flag in _MODIFIERS.items():
            if ev.modifiers() & qt_modifier:
                modifiers |= flag
        world = widget.world_at(pos)
        ijk = self.point_ijk(widget, pos)
        return PointerEvent(
            widget, self.view_axis(widget),
            None if ijk is None else (float(ijk[0]), float(ijk[1]), float(ijk[2])),
            button, modifiers,
            None if world is None else (float(world[0]), float(world[1]), float(world[2])),
            (pos.x(), pos.y()))

    # -- mouse and keys (called by SliceViewWidget; True = handled) ----------------------------
    def press(self, widget: SliceViewWidget, ev: QMouseEvent) -> bool:
        tool = self.tool
        if tool in EDIT_TOOLS and ev.button() == Qt.MouseButton.LeftButton:
            if self.busy:
                if self.ai.busy:
                    self.window.statusBar().showMessage("AI: running... (edits wait for it)",
                                                        3000)
                return True
            if self.window.volume is None or self.ensure_segment() is None:
                return True
        reply = self.toolbox.press(self.pointer_event(widget, ev))
        if reply.began:
            self._painting = widget
        if tool in BRUSH_TOOLS and reply.handled:
            self.cursors.move(widget, ev.position(), self.brush.diameter_mm)
        return self._answer(widget, reply, now=True)

    def move(self, widget: SliceViewWidget, ev: QMouseEvent) -> bool:
        if self.tool in BRUSH_TOOLS:
            self.cursors.move(widget, ev.position(), self.brush.diameter_mm)
        reply = self.toolbox.move(self.pointer_event(widget, ev, ev.buttons()))
        if self.tool in BRUSH_TOOLS:
            # Every move stamps at once; the frame is drawn once the waiting moves are
            # handled (see ui/frame_scheduler.py), so a fast stroke never queues frames.
            if reply.redraw:
                self._schedule_others(widget)
            self.window.frames.request(widget)
            return self._painting is widget
        return self._answer(widget, reply)

    def release(self, widget: SliceViewWidget, ev: QMouseEvent) -> bool:
        tool = self.tool
        reply = self.toolbox.release(self.pointer_event(widget, ev))
        if not reply.handled:
            return False
        if tool in GESTURE_TOOLS:
            self._painting = None
        if tool in BRUSH_TOOLS:
            self._committed(reply.edit)
            return True
        return self._answer(widget, reply)

    def _answer(self, widget: SliceViewWidget, reply: Reply, now: bool = False) -> bool:
        """Do what a tool's reply asks of the GUI; returns whether the event was taken."""
        if reply.message:
            self.window.statusBar().showMessage(reply.message, 8000)
        if reply.edit is not None:
            self._committed(reply.edit)
        if reply.change is not None:
            self.apply(reply.change)
        if reply.job is not None:
            self.regions.run(reply.job)
        if self.tool is Tool.SCISSORS:
            if self.regions.lasso:
                self.regions.show_lasso(widget)
            else:
                self.regions.clear_lasso()
        if reply.redraw or (now and reply.handled):
            self._schedule_others(widget)
            widget.render_view()
        return reply.handled

    def wheel(self, widget: SliceViewWidget, ev: QWheelEvent) -> bool:
        if not ev.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            return False
        delta = ev.angleDelta()
        notches = (delta.y() or delta.x()) / 120  # some platforms turn shift+wheel sideways
        if notches:
            self.scale_brush(notches)
            self.cursors.move(widget, ev.position(), self.brush.diameter_mm)
            widget.render_view()
        return True

    def key(self, widget: SliceViewWidget, ev: QKeyEvent) -> bool:
        if ev.key() == Qt.Key.Key_Escape and (self._painting is not None or self.regions.lasso):
            self.cancel()
            return True
        if self.tool is Tool.RULER:
            return self.measure.key(widget, ev)
        if self.tool is Tool.AI:
            if ev.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self.ai.accept()
                return True
            if ev.key() == Qt.Key.Key_Escape:
                return self.ai.cancel()
        return False

    def leave(self, widget: SliceViewWidget) -> None:
        self.cursors.hide(widget)

    def cancel(self) -> None:
        """Escape: drop the stroke, lasso or AI drag in progress."""
        painting, self._painting = self._painting, None
        self.toolbox.cancel()
        self.regions.clear_lasso()
        if painting is not None:
            self._dirty.add(painting)
        self.flush()
