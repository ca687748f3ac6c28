"""The 3D panel: volume rendering with CT presets and segment surfaces built in the background.

:class:`View3DPanel` is a small header (preset, volume/surfaces toggles, reset, surface build
progress) above a :class:`View3DWidget`. Surfaces are built by
:func:`medseg_gui.rendering.surfaces.build_surfaces` on the thread pool from a copy of the
label map, and handed to the scene (rendering) on the GUI thread. The main window connects the
editing controller's signals to :meth:`View3DPanel.segmentation_changed` (rebuilds are
debounced) and :meth:`View3DPanel.set_busy`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import PySide6.QtCore  # noqa: F401  (import PySide6 before vtkmodules.qt picks a binding)
import vtkmodules.qt
from PySide6.QtCore import QSize, QThreadPool, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QMouseEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QLabel,
    QProgressBar,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

vtkmodules.qt.PyQtImpl = "PySide6"

from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor  # noqa: E402
from vtkmodules.vtkCommonCore import vtkCommand  # noqa: E402
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera  # noqa: E402

from medseg_gui.core.segmentation import Segmentation  # noqa: E402
from medseg_gui.core.volume import Volume  # noqa: E402
from medseg_gui.rendering.imagedata import capture_window  # noqa: E402
from medseg_gui.rendering.surfaces import Surface, build_surfaces  # noqa: E402
from medseg_gui.rendering.volume_render import (  # noqa: E402
    INTERACTIVE_RATE,
    STILL_RATE,
    Scene3D,
    VolumePreset,
    load_volume_presets,
)
from medseg_gui.ui import settings  # noqa: E402
from medseg_gui.ui.slice_widget import release_vtk_windows  # noqa: E402
from medseg_gui.ui.workers import Task  # noqa: E402

# Wait this long after the last segmentation change before rebuilding (ms): a brush stroke
# sends many changes, and one rebuild at the end is enough.
REBUILD_DELAY_MS = 400
PRESET_KEY = "view3d/preset"
CROSSHAIR_RENDER_DELAY_MS = 250
# While the user paints, a 3D frame waits this long and asks again (ms): a still-quality frame
# takes 0.5-10 s on software OpenGL, all of it on the GUI thread, and would freeze the stroke.
BUSY_RETRY_MS = 200


class View3DWidget(QVTKRenderWindowInteractor):
    """A trackball-camera VTK widget showing a :class:`Scene3D`, coarse while dragging."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)  # type: ignore[no-untyped-call]
        self.scene = Scene3D()
        window = self.GetRenderWindow()  # type: ignore[no-untyped-call]
        window.AddRenderer(self.scene.renderer)
        style = vtkInteractorStyleTrackballCamera()
        self._Iren.SetInteractorStyle(style)
        self._Iren.SetDesiredUpdateRate(INTERACTIVE_RATE)
        self._Iren.SetStillUpdateRate(STILL_RATE)
        style.AddObserver(vtkCommand.StartInteractionEvent, self._start_interaction)
        style.AddObserver(vtkCommand.EndInteractionEvent, self._end_interaction)
        self._Iren.Initialize()
        self.setMinimumSize(160, 160)

    def _start_interaction(self, *_: Any) -> None:
        self.scene.set_interactive(self.GetRenderWindow(),  # type: ignore[no-untyped-call]
                                   True)

    def _end_interaction(self, *_: Any) -> None:
        self.scene.set_interactive(self.GetRenderWindow(),  # type: ignore[no-untyped-call]
                                   False)
        # The full-quality frame once the event that ended the drag has been handled.
        QTimer.singleShot(0, self.render_view)

    def mousePressEvent(self, ev: QMouseEvent) -> None:
        self.setFocus()
        super().mousePressEvent(ev)  # type: ignore[no-untyped-call]

    def render_view(self) -> None:
        if self.isVisible():
            self.GetRenderWindow().Render()  # type: ignore[no-untyped-call]

    def capture(self) -> np.ndarray:
        """The rendered view as an RGB array ``(height, width, 3)``, row 0 at the top."""
        window = self.GetRenderWindow()  # type: ignore[no-untyped-call]
        # The first frame of a newly set volume can come out incomplete on software GL (the
        # ray caster uploads its textures during it); draw it before the one that is read.
        window.Render()
        return capture_window(window)


class View3DPanel(QWidget):
    """Header of controls above the 3D view.

    Signals
    -------
    surfacesBuilt(int)
        How many segment surfaces the scene now shows.
    """

    surfacesBuilt = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vtk = View3DWidget()
        self.scene = self.vtk.scene
        self.presets = self._read_presets()
        self.segmentation: Segmentation | None = None
        self._task: Task | None = None
        self._rebuild = QTimer(self, singleShot=True, interval=REBUILD_DELAY_MS)
        self._rebuild.timeout.connect(self._start_build)
        self._deferred_render = QTimer(self, singleShot=True, interval=CROSSHAIR_RENDER_DELAY_MS)
        self._deferred_render.timeout.connect(self.render_view)
        # Renders asked for while handling one event (new volume, then new segmentation) become
        # one frame drawn from the event loop: a full-quality frame costs ~0.5 s on software GL,
        # and back-to-back synchronous renders of a freshly loaded scene crashed llvmpipe.
        self._render_soon = QTimer(self, singleShot=True, interval=0)
        self._render_soon.timeout.connect(self._render_when_free)
        # True while a frame would interrupt the user (a paint stroke): see set_busy.
        self.busy = False

        self.preset_box = QComboBox()
        self.preset_box.addItems([p.name for p in self.presets])
        self.preset_box.setToolTip("Volume-rendering preset")
        self.volume_check = QCheckBox("Volume")
        self.surface_check = QCheckBox("Surfaces")
        for check in (self.volume_check, self.surface_check):
            check.setChecked(True)
        self.reset_button = _button("Reset")
        self.reset_button.setToolTip("Anterior view, fitted")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(90)
        self.progress.setFormat("surfaces")
        self.cancel_button = _button("x")
        self.cancel_button.setToolTip("Stop building surfaces")
        self.status = QLabel("")
        # A toolbar rather than a row of widgets: it folds what does not fit into its
        # extension menu, so the header never forces the panel wider than its grid cell.
        header = QToolBar()
        header.setIconSize(QSize(12, 12))
        self._busy_actions = []
        for w in (QLabel(" 3D "), self.preset_box, self.volume_check, self.surface_check,
                  self.reset_button, self.progress, self.cancel_button, self.status):
            action = header.addWidget(w)
            if w in (self.progress, self.cancel_button):
                self._busy_actions.append(action)
        header.setStyleSheet("QToolBar { background: #202024; border: 0; spacing: 4px; } "
                             "QLabel, QCheckBox { color: #d0d0d0; }")
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(0)
        box.addWidget(header)
        box.addWidget(self.vtk, 1)
        self._show_busy(False)

        saved = settings.get_str(PRESET_KEY, self.presets[0].name if self.presets else "")
        names = [p.name for p in self.presets]
        if saved in names:
            self.preset_box.setCurrentIndex(names.index(saved))
        if self.presets:
            self.scene.set_preset(self.presets[self.preset_box.currentIndex()])
        self.preset_box.currentIndexChanged.connect(self._preset_chosen)
        self.volume_check.toggled.connect(self._volume_toggled)
        self.surface_check.toggled.connect(self._surfaces_toggled)
        self.reset_button.clicked.connect(self.reset_camera)
        self.cancel_button.clicked.connect(self.cancel_build)

    @staticmethod
    def _read_presets() -> list[VolumePreset]:
        try:
            return load_volume_presets()
        except (OSError, ValueError, KeyError):
            return []

    def closeEvent(self, event: QCloseEvent) -> None:
        self.cancel_build()
        release_vtk_windows(self)
        super().closeEvent(event)

    # -- state from the main window ----------------------------------------------------------
    def set_volume(self, volume: Volume) -> None:
        self.cancel_build()
        self.segmentation = None
        self.scene.set_volume(volume)
        self.scene.set_volume_visible(self.volume_check.isChecked())
        self.render_view()

    def set_segmentation(self, segmentation: Segmentation | None) -> None:
        """Show ``segmentation``'s surfaces (built in the background), or none."""
        self.segmentation = segmentation
        if segmentation is None:
            self.cancel_build()
            self.scene.set_surfaces([])
            self.render_view()
            return
        self._rebuild.start(0)

    def segmentation_changed(self) -> None:
        """The label map or segment table was edited: rebuild the surfaces soon (debounced)."""
        if self.segmentation is not None:
            self._rebuild.start(REBUILD_DELAY_MS)

    def set_crosshair(self, world: Any) -> None:
        """Move the 3D crosshair; the redraw waits until scrolling pauses (a volume-rendered
        frame costs far more than a slice, so it must not run once per wheel step)."""
        self.scene.set_crosshair(world)
        self._deferred_render.start()

    def render_view(self) -> None:
        """Draw the 3D view once control returns to the event loop (coalesced), and not while
        :attr:`busy` says the user is in the middle of a stroke."""
        self._render_soon.start()

    def set_busy(self, busy: bool) -> None:
        """Slot: while ``busy`` (the user paints), frames wait (a still frame costs 0.5-10 s
        on software OpenGL, all of it on the GUI thread)."""
        self.busy = bool(busy)

    def _render_when_free(self) -> None:
        if self.busy:
            self._render_soon.start(BUSY_RETRY_MS)
            return
        self._render_soon.setInterval(0)
        self.vtk.render_view()

    def reset_camera(self) -> None:
        self.scene.reset_camera()
        self.render_view()

    def set_preset(self, name: str) -> None:
        names = [p.name.lower() for p in self.presets]
        if name.lower() not in names:
            raise KeyError(f"no 3D preset {name!r}")
        self.preset_box.setCurrentIndex(names.index(name.lower()))

    def _preset_chosen(self, n: int) -> None:
        if 0 <= n < len(self.presets):
            self.scene.set_preset(self.presets[n])
            settings.set_value(PRESET_KEY, self.presets[n].name)
            self.render_view()

    def _volume_toggled(self, on: bool) -> None:
        self.scene.set_volume_visible(on)
        self.render_view()

    def _surfaces_toggled(self, on: bool) -> None:
        self.scene.set_surfaces_visible(on)
        self.render_view()

    # -- surfaces in the background ----------------------------------------------------------
    @property
    def building(self) -> bool:
        return self._task is not None or self._rebuild.isActive()

    def _start_build(self) -> None:
        seg = self.segmentation
        if seg is None:
            return
        if self._task is not None:
            self._task.cancel()
        # A private copy: the editor may paint into the label map while the worker reads.
        labels = np.array(seg.labelmap, copy=True)
        geometry, segments = seg.geometry, list(seg.segments)
        task = Task(lambda progress: build_surfaces(labels, geometry, segments, progress))
        task.signals.progress.connect(self._on_progress)
        task.signals.finished.connect(self._on_built)
        task.signals.failed.connect(self._on_failed)
        task.signals.cancelled.connect(self._on_cancelled)
        self._task = task
        self._show_busy(True)
        QThreadPool.globalInstance().start(task)

    def cancel_build(self) -> None:
        self._rebuild.stop()
        if self._task is not None:
            self._task.cancel()

    def _finish(self, task: Task) -> bool:
        if task is not self._task:
            return False
        self._task = None
        self._show_busy(False)
        return True

    def _show_busy(self, busy: bool) -> None:
        for action in self._busy_actions:
            action.setVisible(busy)

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        self.progress.setToolTip(message)

    def _on_built(self, task: Task, surfaces: list[Surface]) -> None:
        if not self._finish(task):
            return
        self.scene.set_surfaces(surfaces)
        self.status.setText(f"{len(surfaces)} surface(s)" if surfaces else "")
        self.render_view()
        self.surfacesBuilt.emit(len(surfaces))

    def _on_failed(self, task: Task, exc: BaseException) -> None:
        if self._finish(task):
            self.status.setText(f"surfaces failed: {exc}")

    def _on_cancelled(self, task: Task) -> None:
        self._finish(task)


def _button(text: str) -> QToolButton:
    button = QToolButton()
    button.setText(text)
    return button
