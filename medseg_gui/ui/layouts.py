"""View layouts: 2x2 (axial, coronal, sagittal, 3D), 1x3 (the three slices side by side) and a
single view (the one that last had focus).

The four panels stay children of one grid for the window's lifetime and are only moved and
hidden: re-parenting a native OpenGL widget would recreate its window and lose its context.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QEvent, QObject, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QGridLayout,
    QMainWindow,
    QMenu,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from medseg_gui.ui import settings

LAYOUTS = {"2x2": "2 x 2", "1x3": "1 x 3", "single": "Single view"}
SHORTCUTS = {"2x2": "Ctrl+1", "1x3": "Ctrl+2", "single": "Ctrl+3"}
SETTINGS_KEY = "view/layout"


class ViewLayout(QWidget):
    """Arranges the panels ``[axial, coronal, sagittal, 3D]``.

    Signals
    -------
    layoutChanged(str)
        The new layout name, one of :data:`LAYOUTS`.
    """

    layoutChanged = Signal(str)

    def __init__(self, panels: Sequence[QWidget], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.panels = list(panels)
        self.frames: list[QFrame] = []
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(2, 2, 2, 2)
        self.grid.setSpacing(2)
        for panel in self.panels:
            frame = QFrame()
            frame.setFrameShape(QFrame.Shape.Box)
            frame.setStyleSheet("QFrame { border: 1px solid #404040; background: black; }")
            box = QVBoxLayout(frame)
            box.setContentsMargins(1, 1, 1, 1)
            box.addWidget(panel)
            self.frames.append(frame)
        self.focused = 0
        self.layout_name = ""
        # A click picks the view too: keyboard focus alone is unreliable for native GL widgets
        # and for windows the window manager has not activated.
        for panel in self.panels:
            for widget in [panel, *panel.findChildren(QWidget)]:
                widget.installEventFilter(self)
        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.focusChanged.connect(self._focus_changed)
        self.set_layout("2x2")

    def _focus_changed(self, _old: QWidget | None, new: QWidget | None) -> None:
        for n, frame in enumerate(self.frames):
            if new is not None and (new is frame or frame.isAncestorOf(new)):
                self.focused = n
                return

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.MouseButtonPress and isinstance(watched, QWidget):
            self._focus_changed(None, watched)
        return False

    def set_focused(self, n: int) -> None:
        """Which panel the single layout shows (0 axial, 1 coronal, 2 sagittal, 3 3D)."""
        self.focused = int(n) % len(self.frames)
        if self.layout_name == "single":
            self._arrange("single")

    def set_layout(self, name: str) -> None:
        """Switch to layout ``name``; ``"single"`` again moves on to the next panel."""
        if name not in LAYOUTS:
            raise ValueError(f"unknown layout {name!r}; one of {', '.join(LAYOUTS)}")
        if name == "single" and self.layout_name == "single":
            self.focused = (self.focused + 1) % len(self.frames)
        self._arrange(name)
        if name != self.layout_name:
            self.layout_name = name
            self.layoutChanged.emit(name)

    def _arrange(self, name: str) -> None:
        for frame in self.frames:
            self.grid.removeWidget(frame)
        for n in range(3):
            self.grid.setRowStretch(n, 0)
            self.grid.setColumnStretch(n, 0)
        if name == "2x2":
            spots = {n: (n // 2, n % 2) for n in range(4)}
        elif name == "1x3":
            spots = {n: (0, n) for n in range(3)}
        else:
            spots = {self.focused: (0, 0)}
        for n, frame in enumerate(self.frames):
            if n in spots:
                row, col = spots[n]
                self.grid.addWidget(frame, row, col)
                self.grid.setRowStretch(row, 1)
                self.grid.setColumnStretch(col, 1)
            frame.setVisible(n in spots)

    def visible_panels(self) -> list[QWidget]:
        return [p for p, f in zip(self.panels, self.frames, strict=True) if f.isVisible()]


def install_layout_actions(window: QMainWindow, view_layout: ViewLayout,
                           menu: QMenu | None = None) -> dict[str, QAction]:
    """A "Layout" toolbar (and ``menu`` entries) with one exclusive action per layout.

    The choice is saved in the settings and restored here.
    """
    bar = QToolBar("Layout", window)
    bar.setObjectName("layout_toolbar")
    window.addToolBar(bar)
    group = QActionGroup(window)
    group.setExclusive(True)
    actions: dict[str, QAction] = {}
    for name, text in LAYOUTS.items():
        action = QAction(text, window, checkable=True)
        action.setShortcut(QKeySequence(SHORTCUTS[name]))
        action.setToolTip(f"{text} ({SHORTCUTS[name]})")
        action.triggered.connect(lambda _=False, n=name: view_layout.set_layout(n))
        group.addAction(action)
        bar.addAction(action)
        if menu is not None:
            menu.addAction(action)
        actions[name] = action

    def changed(name: str) -> None:
        actions[name].setChecked(True)
        settings.set_value(SETTINGS_KEY, name)

    view_layout.layoutChanged.connect(changed)
    saved = settings.get_str(SETTINGS_KEY, "2x2")
    view_layout.set_layout(saved if saved in LAYOUTS else "2x2")
    actions[view_layout.layout_name].setChecked(True)
    bar.toolbar_actions = actions  # type: ignore[attr-defined]
    return actions
