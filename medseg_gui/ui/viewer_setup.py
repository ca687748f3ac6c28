"""Viewer options added to the main window: layouts, overlay style, auto window, saved geometry.

Kept out of :mod:`medseg_gui.ui.main_window` so that the window class stays a short list of
parts; :func:`install_viewer_options` is called once from its constructor.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QByteArray, QEvent, QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLabel, QMainWindow, QMenu, QSlider, QToolBar

from medseg_gui.rendering.presets import histogram_window
from medseg_gui.ui import settings
from medseg_gui.ui.layouts import install_layout_actions

OPACITY_KEY = "overlay/opacity"
OUTLINE_KEY = "overlay/outline"
DEFAULT_OPACITY = 45  # percent


def find_menu(window: QMainWindow, title: str) -> QMenu:
    """The menu-bar menu called ``title`` (``&`` ignored), created when missing."""
    for action in window.menuBar().actions():
        menu = action.menu()
        if isinstance(menu, QMenu) and action.text().replace("&", "") == title:
            return menu
    return window.menuBar().addMenu(f"&{title}")


class OverlayControls(QObject):
    """Global overlay opacity (slider) and fill/outline (checkable action), saved in settings."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.toolbar = QToolBar("Overlay", window)
        self.toolbar.setObjectName("overlay_toolbar")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 100)
        self.slider.setMaximumWidth(140)
        self.slider.setToolTip("Overlay opacity")
        self.outline = QAction("Outline", window, checkable=True)
        self.outline.setToolTip("Draw segments as outlines instead of filled (Ctrl+Shift+O)")
        self.outline.setShortcut(QKeySequence("Ctrl+Shift+O"))
        self.toolbar.addWidget(QLabel(" Overlay "))
        self.toolbar.addWidget(self.slider)
        self.toolbar.addAction(self.outline)
        window.addToolBar(self.toolbar)
        s = settings.app_settings()
        self.slider.setValue(int(str(s.value(OPACITY_KEY, DEFAULT_OPACITY))))
        self.outline.setChecked(str(s.value(OUTLINE_KEY, "false")).lower() == "true")
        self.slider.valueChanged.connect(self._changed)
        self.outline.toggled.connect(self._changed)
        self.apply()

    def apply(self) -> None:
        for widget in self.window.views.values():
            widget.view.set_label_style(self.slider.value() / 100, self.outline.isChecked())

    def _changed(self, *_: Any) -> None:
        self.apply()
        self.window.render_all()
        settings.set_value(OPACITY_KEY, self.slider.value())
        settings.set_value(OUTLINE_KEY, "true" if self.outline.isChecked() else "false")


class GeometryKeeper(QObject):
    """Restores the window's size, docks and toolbars, and saves them when it closes."""

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        s = settings.app_settings()
        geometry, state = s.value("window/geometry"), s.value("window/state")
        self.restored = isinstance(geometry, QByteArray) and window.restoreGeometry(geometry)
        if isinstance(state, QByteArray):
            window.restoreState(state)
        window.installEventFilter(self)
        self.window = window

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.window and event.type() == QEvent.Type.Close:
            s = settings.app_settings()
            s.setValue("window/geometry", self.window.saveGeometry())
            s.setValue("window/state", self.window.saveState())
            s.sync()
        return False


def apply_auto_window(window: Any) -> None:
    """Window/level from the loaded volume's histogram (2nd-98th percentile of the body)."""
    if window.volume is None:
        return
    wl = histogram_window(window.volume.array)
    window.set_window_level(wl.width, wl.level)
    window.statusBar().showMessage(f"Auto window: W {wl.width:.0f} L {wl.level:.0f}", 5000)


def install_viewer_options(window: Any) -> None:
    """Add the layout toolbar and menu, overlay controls, the auto-window action, recent-study
    bookkeeping and saved window geometry to ``window`` (a :class:`MainWindow`)."""
    view_menu = find_menu(window, "View")
    view_menu.addSeparator()
    auto = QAction("&Auto window (histogram)", window)
    auto.setShortcut(QKeySequence("Ctrl+Shift+A"))
    auto.triggered.connect(lambda: apply_auto_window(window))
    view_menu.addAction(auto)
    window.auto_window_action = auto
    window.overlay_controls = OverlayControls(window)
    view_menu.addAction(window.overlay_controls.outline)
    layout_menu = view_menu.addMenu("Layout")
    window.layout_actions = install_layout_actions(window, window.view_layout, layout_menu)
    reset3d = QAction("Reset &3D view", window)
    reset3d.triggered.connect(window.view3d.reset_camera)
    view_menu.addAction(reset3d)

    def remember(volume: Any) -> None:
        if volume.source:
            settings.add_recent_study(volume.source)

    window.studyLoaded.connect(remember)
    window.geometry_keeper = GeometryKeeper(window)
