"""The one-click tools of the slice views: fill (region grow) and scissors (a lasso).

Both compute a :class:`~medseg_gui.editing.base.Change` with the Qt-free functions of
:mod:`medseg_gui.editing.regions` and commit it through the controller as one undo step. A
fill can touch millions of voxels, so it runs on the thread pool; edits wait until it is done
(:attr:`RegionTools.busy`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, QThreadPool

from medseg_gui.editing import BrushShape
from medseg_gui.editing.base import Change
from medseg_gui.editing.regions import ScissorsOp, region_grow, scissors
from medseg_gui.rendering.edit_feedback import LassoLine
from medseg_gui.ui.workers import Task

if TYPE_CHECKING:
    from medseg_gui.ui.editing_tools import EditingController
    from medseg_gui.ui.slice_widget import SliceViewWidget


class RegionTools(QObject):
    """Fill and scissors state for an :class:`EditingController`."""

    def __init__(self, controller: EditingController) -> None:
        super().__init__(controller)
        self.controller = controller
        self.fill_tolerance_hu = 60.0
        self.scissors_op = ScissorsOp.ERASE_INSIDE
        self.busy = False
        self.lasso: list[np.ndarray] = []
        self._task: Task | None = None
        views = controller.window.views
        self.lines = {o: LassoLine(w.view.renderer) for o, w in views.items()}

    # -- fill ----------------------------------------------------------------------------------
    def fill_at(self, widget: SliceViewWidget, ijk: np.ndarray) -> None:
        """Region grow from ``ijk`` in the background (2D in this view's slice with the disc)."""
        c = self.controller
        editor = c.editor
        if editor is None or editor.image is None or editor.active_label is None:
            c.window.statusBar().showMessage("Fill needs the image on the label map's grid")
            return
        seg, image, label = editor.segmentation, editor.image, editor.active_label
        axis = c.view_axis(widget) if c.brush.shape is BrushShape.DISC else None
        tol, constraint = self.fill_tolerance_hu, c.brush.constraint
        task = Task(lambda _progress: region_grow(
            seg, image, ijk.tolist(), label, tolerance_hu=tol, axis=axis, constraint=constraint,
            hu_range=constraint.hu_range))
        task.signals.finished.connect(self._on_done)
        task.signals.failed.connect(self._on_failed)
        self.busy, self._task = True, task
        QThreadPool.globalInstance().start(task)

    def _on_done(self, task: Task, change: Change) -> None:
        if task is self._task:
            self.busy, self._task = False, None
            self.controller.apply(change)

    def _on_failed(self, task: Task, exc: BaseException) -> None:
        if task is self._task:
            self.busy, self._task = False, None
            self.controller.window.show_error(f"Fill failed: {exc}")

    # -- scissors ------------------------------------------------------------------------------
    def start_lasso(self, widget: SliceViewWidget, ijk: np.ndarray) -> None:
        self.lasso = [ijk]

    def extend_lasso(self, widget: SliceViewWidget, ijk: np.ndarray) -> None:
        self.lasso.append(ijk)
        seg, layout = self.controller.segmentation, widget.view.layout
        if seg is None or layout is None:
            return
        world = seg.geometry.index_to_world(np.asarray(self.lasso))
        xy = layout.world_to_view(world)[:, :2]
        self.lines[widget.view.orientation].set_points(xy.tolist())
        widget.render_view()

    def cancel_lasso(self) -> None:
        if self.lasso:
            self.lasso = []
            for o, line in self.lines.items():
                line.set_points([])
                self.controller.window.views[o].render_view()

    def finish_lasso(self, widget: SliceViewWidget) -> None:
        """Cut the polygon: through the current slice (disc) or the whole volume (sphere)."""
        c = self.controller
        points, self.lasso = self.lasso, []
        self.lines[widget.view.orientation].set_points([])
        editor = c.editor
        if editor is None or editor.active_label is None or len(points) < 3:
            widget.render_view()
            return
        axis = c.view_axis(widget)
        drop = 2 - int(axis)  # the (i, j, k) component across the plane
        uv = [[float(p[n]) for n in range(3) if n != drop] for p in points]
        depth = None
        if c.brush.shape is BrushShape.DISC:
            s = round(float(points[0][drop]))
            depth = (s, s)
        c.apply(scissors(editor.segmentation, uv, axis, editor.active_label,
                         op=self.scissors_op, depth=depth, image=editor.image,
                         constraint=c.brush.constraint))
        widget.render_view()
