"""What the fill and scissors tools need of Qt: a worker thread for the fill, a lasso line.

Their logic is Qt-free (:class:`~medseg_gui.editing.tools.FillTool`,
:class:`~medseg_gui.editing.tools.ScissorsTool`). A fill can touch millions of voxels, so its
job runs on the thread pool and the controller commits the change it returns as one undo
step; edits wait until it is done (:attr:`RegionTools.busy`, the toolbox's ``job_running``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, QThreadPool

from medseg_gui.editing.base import Change
from medseg_gui.editing.regions import ScissorsOp
from medseg_gui.editing.tools import FillTool, Job, ScissorsTool, Tool
from medseg_gui.rendering.edit_feedback import LassoLine
from medseg_gui.ui.workers import Task

if TYPE_CHECKING:
    from medseg_gui.ui.editing_tools import EditingController
    from medseg_gui.ui.slice_widget import SliceViewWidget


class RegionTools(QObject):
    """The fill's worker and the scissors' lasso lines for an :class:`EditingController`."""

    def __init__(self, controller: EditingController) -> None:
        super().__init__(controller)
        self.controller = controller
        box = controller.toolbox
        fill, cut = box.tools[Tool.FILL], box.tools[Tool.SCISSORS]
        assert isinstance(fill, FillTool) and isinstance(cut, ScissorsTool)
        self.fill, self.cut = fill, cut
        self._task: Task | None = None
        views = controller.window.views
        self.lines = {o: LassoLine(w.view.renderer) for o, w in views.items()}

    # -- the tools' options (set by the Tools dock) ----------------------------------------------
    @property
    def fill_tolerance_hu(self) -> float:
        return self.fill.tolerance_hu

    @fill_tolerance_hu.setter
    def fill_tolerance_hu(self, value: float) -> None:
        self.fill.tolerance_hu = float(value)

    @property
    def scissors_op(self) -> ScissorsOp:
        return self.cut.op

    @scissors_op.setter
    def scissors_op(self, op: ScissorsOp) -> None:
        self.cut.op = op

    # -- fill ----------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.controller.toolbox.job_running

    def run(self, job: Job) -> None:
        """Run a tool's job on the thread pool; its change is committed when it is done."""
        task = Task(job)
        task.signals.finished.connect(self._on_done)
        task.signals.failed.connect(self._on_failed)
        self.controller.toolbox.job_running, self._task = True, task
        QThreadPool.globalInstance().start(task)

    def _finish(self, task: Task) -> bool:
        if task is not self._task:
            return False
        self.controller.toolbox.job_running, self._task = False, None
        return True

    def _on_done(self, task: Task, change: Change) -> None:
        if self._finish(task):
            self.controller.apply(change)

    def _on_failed(self, task: Task, exc: BaseException) -> None:
        if self._finish(task):
            self.controller.window.show_error(f"Fill failed: {exc}")

    # -- the lasso line ----------------------------------------------------------------------
    @property
    def lasso(self) -> list[tuple[float, float, float]]:
        return self.cut.lasso

    def show_lasso(self, widget: SliceViewWidget) -> None:
        """Draw the scissors' lasso in progress in ``widget``."""
        seg, layout = self.controller.segmentation, widget.view.layout
        if seg is None or layout is None or not self.cut.lasso:
            return
        world = seg.geometry.index_to_world(np.asarray(self.cut.lasso))
        xy = layout.world_to_view(world)[:, :2]
        self.lines[widget.view.orientation].set_points(xy.tolist())

    def clear_lasso(self) -> None:
        for o, line in self.lines.items():
            if line.actor.GetVisibility():
                line.set_points([])
                self.controller.window.views[o].render_view()
