"""A Qt widget around one :class:`~medseg_gui.rendering.SliceView`.

The widget only turns mouse and key events into requests (move the crosshair, step a slice,
change the window); the main window applies them to every view, so the views stay linked.
VTK's own interactor styles are not used: they would rotate a 2D slice like a 3D scene.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import PySide6.QtCore  # noqa: F401  (import PySide6 before vtkmodules.qt picks a binding)
import vtkmodules.qt
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QKeyEvent, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QWidget

vtkmodules.qt.PyQtImpl = "PySide6"

# Registers the OpenGL and font back-ends VTK needs to render at all.
import vtkmodules.vtkRenderingFreeType  # noqa: E402
import vtkmodules.vtkRenderingOpenGL2  # noqa: E402
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor  # noqa: E402
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleUser  # noqa: E402

from medseg_gui.rendering.imagedata import capture_window  # noqa: E402
from medseg_gui.rendering.slice_view import SliceView  # noqa: E402
from medseg_gui.rendering.slicing import Orientation  # noqa: E402

# Wheel-up / arrow-up direction, in slice indices: superior (axial), anterior (coronal),
# left (sagittal). Slice indices run towards the viewer, which is inferior for axial.
_UP_STEP = {Orientation.AXIAL: -1, Orientation.CORONAL: 1, Orientation.SAGITTAL: 1}
# A press and release this close (pixels, |dx| + |dy|) is a click, not a drag: a right click
# is the AI tool's negative point, so window/level only follows a right drag beyond it.
CLICK_PX = 4


class ToolHandler(Protocol):
    """The editing tools (see :mod:`medseg_gui.ui.editing_tools`): each returns True when it
    handled the event, so the navigation below does not run."""

    def press(self, widget: SliceViewWidget, ev: QMouseEvent) -> bool: ...
    def move(self, widget: SliceViewWidget, ev: QMouseEvent) -> bool: ...
    def release(self, widget: SliceViewWidget, ev: QMouseEvent) -> bool: ...
    def wheel(self, widget: SliceViewWidget, ev: QWheelEvent) -> bool: ...
    def key(self, widget: SliceViewWidget, ev: QKeyEvent) -> bool: ...
    def leave(self, widget: SliceViewWidget) -> None: ...


def release_vtk_windows(container: QWidget) -> None:
    """Finalize the VTK render windows inside ``container``.

    A ``QVTKRenderWindowInteractor`` finalizes itself only on its own close event, which a
    widget embedded in a window never gets; without this every closed window keeps its OpenGL
    context and X connection (the X server refuses new clients after a few hundred).
    """
    for widget in container.findChildren(QVTKRenderWindowInteractor):
        widget.Finalize()  # type: ignore[no-untyped-call]


class SliceViewWidget(QVTKRenderWindowInteractor):
    """Shows one orientation; emits requests, never changes the shared state itself.

    Signals
    -------
    crosshairRequested(object)
        An LPS point (numpy array) the user clicked or scrolled to.
    hovered(object)
        The LPS point under the cursor, or ``None`` when it leaves.
    windowLevelRequested(float, float)
        A new window width and level from a right-button drag.
    """

    crosshairRequested = Signal(object)
    hovered = Signal(object)
    windowLevelRequested = Signal(float, float)

    def __init__(self, orientation: Orientation, parent: Any = None) -> None:
        super().__init__(parent)  # type: ignore[no-untyped-call]
        self.view = SliceView(orientation)
        self.GetRenderWindow().AddRenderer(self.view.renderer)  # type: ignore[no-untyped-call]
        # No multisampling: a 2D slice gains nothing from it, and on software OpenGL it doubles
        # the cost of every frame (the brush must follow the mouse within a frame).
        self.GetRenderWindow().SetMultiSamples(0)  # type: ignore[no-untyped-call]
        self._Iren.SetInteractorStyle(vtkInteractorStyleUser())
        self._Iren.Initialize()
        # Device pixels per widget pixel: the ratio QVTKRenderWindowInteractor sized the render
        # window with, taken when it does (resizeEvent). Its _getPixelRatio asks the X server
        # where the cursor is (a round trip, 0.1-0.4 ms on a loaded machine): four times per
        # mouse move was over a millisecond of every brush event.
        self._pixel_ratio = float(self._getPixelRatio())  # type: ignore[no-untyped-call]
        self._drag: tuple[Qt.MouseButton, QPointF, tuple[float, float]] | None = None
        self._dragging = False  # the drag left the click tolerance
        self.tool: ToolHandler | None = None
        self.setMouseTracking(True)  # the brush cursor follows the mouse without a button
        self.setMinimumSize(160, 160)

    # -- helpers -------------------------------------------------------------------------
    def _display_xy(self, pos: QPointF) -> tuple[float, float]:
        """Qt widget position (origin top left) to VTK display pixels (origin bottom left)."""
        scale = self._pixel_ratio
        return pos.x() * scale, (self.height() - pos.y() - 1) * scale

    def world_at(self, pos: QPointF) -> np.ndarray | None:
        """The LPS point on the current slice under a widget position (``None``: no study)."""
        return self.view.display_to_world(*self._display_xy(pos))

    def render_view(self) -> None:
        """Redraw now (the pipeline is lazy: only a render pulls new data through it)."""
        if self.isVisible():
            self.GetRenderWindow().Render()  # type: ignore[no-untyped-call]

    def capture(self) -> np.ndarray:
        """The rendered view as an RGB array ``(height, width, 3)``, row 0 at the top."""
        return capture_window(self.GetRenderWindow())  # type: ignore[no-untyped-call]

    # -- events ----------------------------------------------------------------------------
    def resizeEvent(self, ev: Any) -> None:
        self._pixel_ratio = float(self._getPixelRatio())  # type: ignore[no-untyped-call]
        super().resizeEvent(ev)  # type: ignore[no-untyped-call]

    def mousePressEvent(self, ev: QMouseEvent) -> None:
        self.setFocus()
        if self.tool is not None and self.tool.press(self, ev):
            return
        button = ev.button()
        self._drag = (button, ev.position(), self.view.window_level)
        self._dragging = False
        if button == Qt.MouseButton.LeftButton:
            world = self.world_at(ev.position())
            if world is not None:
                self.crosshairRequested.emit(world)

    def mouseReleaseEvent(self, ev: QMouseEvent) -> None:
        self._drag = None
        if self.tool is not None:
            self.tool.release(self, ev)

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:
        pos = ev.position()
        world = self.world_at(pos)
        self.hovered.emit(world)
        if self.tool is not None and self.tool.move(self, ev):
            return
        if self._drag is None:
            return
        button, start, (width, level) = self._drag
        dx, dy = pos.x() - start.x(), pos.y() - start.y()
        self._dragging |= abs(dx) + abs(dy) > CLICK_PX
        if button == Qt.MouseButton.LeftButton and world is not None:
            self.crosshairRequested.emit(world)
        elif button == Qt.MouseButton.RightButton and self._dragging:
            # Drag right widens the window, drag up raises the level (as in most viewers).
            self.windowLevelRequested.emit(max(1.0, width * (1 + dx / 200)), level - dy * width
                                           / 400)
        elif button == Qt.MouseButton.MiddleButton:
            self._pan_by(dx, dy)
            self._drag = (button, pos, (width, level))

    def _pan_by(self, dx: float, dy: float) -> None:
        cam = self.view.renderer.GetActiveCamera()
        mm_per_px = 2 * cam.GetParallelScale() / max(1, self.height())
        px, py = self.view.pan
        self.view.pan = (px - dx * mm_per_px, py + dy * mm_per_px)
        self.render_view()

    def leaveEvent(self, ev: Any) -> None:
        self.hovered.emit(None)
        if self.tool is not None:
            self.tool.leave(self)
        super().leaveEvent(ev)  # type: ignore[no-untyped-call]

    def wheelEvent(self, ev: QWheelEvent) -> None:
        notches = ev.angleDelta().y() / 120
        if self.tool is not None and self.tool.wheel(self, ev):
            return
        if not notches:
            return
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.view.zoom = float(np.clip(self.view.zoom * 1.15**notches, 0.2, 20.0))
            self.render_view()
            return
        self.step(int(np.sign(notches) * max(1, round(abs(notches)))))

    def step(self, up: int) -> None:
        """Move ``up`` slices in the wheel-up direction (negative: down)."""
        world = self.view.step_world(up * _UP_STEP[self.view.orientation])
        if world is not None:
            self.crosshairRequested.emit(world)

    def keyPressEvent(self, ev: QKeyEvent) -> None:
        if self.tool is not None and self.tool.key(self, ev):
            return
        steps: dict[int, int] = {Qt.Key.Key_Up: 1, Qt.Key.Key_Down: -1, Qt.Key.Key_PageUp: 10,
                 Qt.Key.Key_PageDown: -10, Qt.Key.Key_Right: 1, Qt.Key.Key_Left: -1}
        if ev.key() in steps:
            self.step(steps[ev.key()])
        elif ev.key() == Qt.Key.Key_R:
            self.view.zoom, self.view.pan = 1.0, (0.0, 0.0)
            self.render_view()
        else:
            ev.ignore()
