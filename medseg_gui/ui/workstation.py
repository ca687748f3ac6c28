"""What a feature may use of the main window: a narrow interface instead of ``MainWindow``.

``ui/main_window.py`` installs the features (the editing docks, export, the training queue,
PACS, the Segment menu, statistics, AI confidence, crash recovery). When they imported
``MainWindow`` for its type, the main window and its features imported each other: an import
circle. They now take a :class:`Workstation`, which ``MainWindow`` implements, and an
import-linter contract forbids any ui module but ``app`` to import ``main_window``
(``pyproject.toml``).

It names only what the features use: the window's shared state, its services, and of the
features other features reach (a dock, the AI draft's signals) only what is used of them, so
this module imports none of them but the editing controller, which imports no feature. Like
:class:`~medseg_gui.ui.viewer_window.ViewerWindow` (the part the editing tools see), it is a
``QMainWindow`` subclass rather than a ``typing.Protocol`` because the features parent their
docks, actions and dialogs on the window.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from medseg_gui.ui.viewer_window import ViewerWindow

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from PySide6.QtCore import SignalInstance
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import QDockWidget, QProgressBar, QTableWidget, QToolButton

    from medseg_gui.core.segmentation import Segmentation
    from medseg_gui.ui.editing_tools import EditingController
    from medseg_gui.ui.layouts import ViewLayout
    from medseg_gui.ui.slice_widget import SliceViewWidget
    from medseg_gui.ui.view3d import View3DPanel


class AIDraft(Protocol):
    """What the training queue and fine-tuning use of the "Segment tumour" action."""

    started: SignalInstance
    ended: SignalInstance
    draft: Segmentation | None

    @property
    def running(self) -> bool: ...


class ConfidenceOverlay(Protocol):
    """What the "Segment tumour" action and the app use of the AI confidence dock."""

    action: QAction
    table: QTableWidget

    def set_draft(self, probability: npt.NDArray[np.float16], draft: Segmentation,
                  report: dict[str, Any], model: str) -> None: ...


class Workstation(ViewerWindow):
    """The main window as the features see it (``MainWindow`` implements it)."""

    view3d: View3DPanel
    view_layout: ViewLayout
    progress_bar: QProgressBar
    cancel_button: QToolButton
    editing: EditingController
    tool_panel: QDockWidget
    segment_panel: QDockWidget
    confidence: ConfidenceOverlay
    segment_action: AIDraft
    studyLoaded: SignalInstance

    @property
    def loading(self) -> bool:
        """A study or labels load is running."""
        raise NotImplementedError

    def set_crosshair(self, world: Any, source: SliceViewWidget | None = None) -> None:
        """Move the shared crosshair (LPS mm); every view follows it."""
        raise NotImplementedError

    def open_path(self, path: str | Path, labels: str | Path | None = None) -> None:
        """Load a study (and optionally labels) in the background."""
        raise NotImplementedError

    def confirm_replace_edits(self, force: bool = False) -> bool:
        """Whether the edited segmentation may be replaced (asks unless headless)."""
        raise NotImplementedError
