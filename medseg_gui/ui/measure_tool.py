"""The ruler tool (M) and the RECIST axes in the slice views: drawing, picking, dragging.

It is a tool of the editing controller's :class:`~medseg_gui.editing.tools.ToolBox` (events
arrive as :class:`~medseg_gui.editing.tools.PointerEvent`), and turns them and the keys into
calls of the Qt-free
:class:`~medseg_gui.editing.measure_edit.MeasureGesture` (what a press picks, what a drag shows,
the step a release commits) and draws the result with
:class:`~medseg_gui.rendering.measurement_lines.MeasurementLines` in every slice view. With the
Ruler tool active: drag on the slice to measure, drag an end point of a ruler or of a RECIST axis
to move it (an edited axis replaces the computed one in the statistics table, the report and the
SR), click a line to select it, Delete removes a selected ruler or puts a selected axis back to
the computed one; Esc drops a drag. Each of those is one named undo step (Ctrl+Z).

The study's annotations live in an :class:`~medseg_gui.editing.annotations.AnnotationStore`,
opened for each study shown and written to disk on every change; the computed axes come from the
Segment statistics dock (:meth:`MeasureTool.follow_stats`), whose "Show RECIST axes" switches
the axes (not the rulers) on and off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent

from medseg_gui.core.annotations import (
    Annotations,
    AxisName,
    Point,
    ReadAxes,
    as_point,
    effective_recist,
)
from medseg_gui.core.measurements import Recist
from medseg_gui.core.segmentation import Segmentation
from medseg_gui.core.volume import Volume
from medseg_gui.editing.annotations import AnnotationStore
from medseg_gui.editing.measure_edit import (
    Kind,
    MeasureGesture,
    MeasureLine,
    ToDisplay,
    measure_lines,
    pick,
)
from medseg_gui.editing.tools import IGNORED, Button, PointerEvent, Reply
from medseg_gui.rendering.measurement_lines import (
    LONG,
    RULER,
    SHORT,
    DrawnLine,
    MeasurementLines,
    on_slice,
)

if TYPE_CHECKING:
    from medseg_gui.ui.editing_tools import EditingController
    from medseg_gui.ui.segment_stats import SegmentStats
    from medseg_gui.ui.slice_widget import SliceViewWidget


def line_text(line: MeasureLine) -> str:
    """``"41.2 mm"``, with ``" (edited)"`` for an axis moved by hand."""
    return f"{line.length_mm:.1f} mm" + (" (edited)" if line.edited else "")


class MeasureTool(QObject):
    """Rulers and editable RECIST axes for every slice view of the controller's window.

    Signals
    -------
    changed()
        The annotations or the computed axes changed (the statistics table shows them).
    """

    changed = Signal()

    def __init__(self, controller: EditingController) -> None:
        super().__init__(controller)
        self.controller = controller
        self.window = controller.window
        self.gesture = MeasureGesture()
        self.store: AnnotationStore | None = None
        self._volume: Volume | None = None
        self.computed: dict[int, Recist] = {}
        self.show_axes = True
        self.lines = {o: MeasurementLines(w.view) for o, w in self.window.views.items()}
        self._painting: SliceViewWidget | None = None
        controller.sessionChanged.connect(self._session_changed)
        controller.toolChanged.connect(lambda _t: self._drop_gesture())

    # -- state -------------------------------------------------------------------------------
    @property
    def notes(self) -> Annotations:
        """The study's rulers and edited axes (none before a study is shown)."""
        store = self._study_store()
        return store.notes if store is not None else Annotations()

    def _study_store(self) -> AnnotationStore | None:
        """The store of the study on screen, opened when the study changed."""
        volume = self.window.volume
        if volume is not self._volume:
            self._volume, self.gesture = volume, MeasureGesture()
            self.store = None if volume is None else AnnotationStore.of_study(volume)
            if self.store is not None:
                self.store.add_listener(lambda _notes: self._notes_changed())
                if self.store.error:
                    self.window.statusBar().showMessage(self.store.error, 15000)
        return self.store

    def read_axes(self) -> list[ReadAxes]:
        """Each segment's RECIST axes as shown: edited over computed."""
        seg = self.controller.segmentation
        notes = self.notes
        return [effective_recist(s.label, self.computed.get(s.label), notes)
                for s in (seg.segments if seg is not None else [])]

    def follow_stats(self, stats: SegmentStats) -> None:
        """Take the computed axes from the statistics dock and its "Show RECIST axes"."""
        stats.measured.connect(lambda: self.set_computed({
            r.segment.label: r.measured.recist for r in stats.rows
            if r.measured.recist is not None}))
        stats.show_recist.toggled.connect(self.set_show_axes)
        self.show_axes = stats.show_recist.isChecked()

    def set_computed(self, computed: dict[int, Recist]) -> None:
        self.computed = dict(computed)
        self.changed.emit()
        self.refresh()

    def set_show_axes(self, visible: bool) -> None:
        self.show_axes = visible
        self.refresh()

    # -- drawing -------------------------------------------------------------------------------
    def shown_lines(self) -> list[MeasureLine]:
        """The rulers, and the axes while they are switched on."""
        return measure_lines(self.notes, self.read_axes() if self.show_axes else [])

    def refresh(self, only: SliceViewWidget | None = None) -> None:
        """Give every view (or ``only`` one) the lines to draw, and draw."""
        color = {Kind.RULER: RULER}
        drawn = []
        for line in self.gesture.preview(self.shown_lines()):
            c = color.get(line.id.kind) or (LONG if line.id.axis is AxisName.LONG else SHORT)
            drawn.append(DrawnLine(line.start, line.end, c, line_text(line),
                                   line.id == self.gesture.selected))
        for orientation, lines in self.lines.items():
            widget = self.window.views[orientation]
            if only is None or widget is only:
                lines.set_lines(drawn)
                widget.render_view()

    def _notes_changed(self) -> None:
        self.changed.emit()
        self.refresh()

    def _session_changed(self) -> None:
        self._study_store()  # a new study shows its own rulers
        self.refresh()

    def _drop_gesture(self) -> None:
        self.gesture.cancel()
        self.gesture.selected = None
        self._painting = None
        self.refresh()

    # -- committing -----------------------------------------------------------------------------
    def commit(self, name: str, notes: Annotations) -> bool:
        """Make ``notes`` the study's annotations as one undo step ``name``."""
        store, volume = self._study_store(), self.window.volume
        if store is None or volume is None:
            return False
        if self.controller.editor is None:  # the undo history lives in the editor
            self.window.set_segmentation(Segmentation.empty(volume.geometry), force=True)
        editor = self.controller.editor
        if editor is None:
            return False
        editor.annotations = store
        edit = editor.change_annotations(name, notes)
        self.controller.tableChanged.emit()  # the Undo menu names the step: "Undo Add ruler"
        if store.error:
            self.window.statusBar().showMessage(store.error, 15000)
        return edit is not None

    def reset_axes(self, label: int) -> bool:
        """Put both RECIST axes of segment ``label`` back to the computed ones (one step)."""
        return self.commit("Reset RECIST axes", self.notes.without_axes(label))

    # -- mouse and keys (routed by the editing controller while the Ruler tool is active) ------
    def _pickable(self, widget: SliceViewWidget) -> list[MeasureLine]:
        layout = widget.view.layout
        if layout is None:
            return []
        return [ln for ln in self.shown_lines()
                if on_slice(layout, widget.view.slice_index, [ln.start, ln.end]) is not None]

    def _to_px(self, widget: SliceViewWidget) -> ToDisplay:
        """LPS -> pixels of the view (its view plane scaled by the zoom): picking distances."""
        view = widget.view
        layout = view.layout
        height = max(1, view.renderer.GetSize()[1])
        mm_per_px = 2 * view.renderer.GetActiveCamera().GetParallelScale() / height

        def to_px(world: Point) -> tuple[float, float] | None:
            if layout is None or mm_per_px <= 0:
                return None
            x, y, _ = layout.world_to_view(np.asarray(world, dtype=np.float64))
            return float(x) / mm_per_px, float(y) / mm_per_px

        return to_px

    @property
    def busy(self) -> bool:
        """Nothing of this tool runs in the background."""
        return False

    def press(self, event: PointerEvent) -> Reply:
        widget = cast("SliceViewWidget", event.view)
        if event.button is not Button.LEFT or self._study_store() is None:
            return IGNORED  # right drag: window/level, middle: pan
        if event.world is None:
            return Reply(True)
        to_px = self._to_px(widget)
        mouse = to_px(as_point(event.world))
        lines = self._pickable(widget)
        picked = pick(lines, mouse, to_px) if mouse is not None else None
        self.gesture.press(event.world, picked, lines)
        self._painting = widget
        self.refresh()
        return Reply(True)

    def move(self, event: PointerEvent) -> Reply:
        widget = cast("SliceViewWidget", event.view)
        if self._painting is not widget or not self.gesture.dragging:
            return IGNORED
        if event.world is not None and self.gesture.move(event.world):
            self.refresh(only=widget)
        return Reply(True)

    def release(self, event: PointerEvent) -> Reply:
        if event.button is not Button.LEFT or self._painting is not event.view:
            return IGNORED
        self._painting = None
        step = self.gesture.release(self.notes, self.shown_lines())
        if step is None or not self.commit(*step):
            self.refresh()
        return Reply(True)

    def cancel(self) -> bool:
        """Escape: drop the drag in progress; True if there was one."""
        had = self.gesture.cancel()
        self._painting = None
        self.refresh()
        return had

    def key(self, widget: SliceViewWidget, ev: QKeyEvent) -> bool:
        if ev.key() == Qt.Key.Key_Escape:
            return self.cancel()
        if ev.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            step = self.gesture.delete(self.notes)
            if step is not None:
                self.commit(*step)
            elif self.gesture.selected is not None and self.gesture.selected.kind is Kind.AXIS:
                self.window.statusBar().showMessage(
                    "A computed RECIST axis cannot be deleted: drag its ends to edit it, or "
                    "hide the axes with View > Show RECIST axes", 8000)
            return True
        return False
