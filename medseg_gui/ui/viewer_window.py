"""The main window as the editing tools see it: a narrow interface in a module of its own.

See :mod:`medseg_gui.ui.workstation` for why the features take an interface instead of
``MainWindow``. This is the part the editing controller and its tools need (the study, the
slice views, the frame scheduler, the status bar, errors, replacing the segmentation);
:class:`~medseg_gui.ui.workstation.Workstation` extends it with what the docks and menus use,
among it the editing controller itself, which is why the controller cannot take that one.

It is a ``QMainWindow`` subclass, not a ``typing.Protocol``: every feature parents its docks,
actions and message boxes on the window, and Qt (and mypy's view of Qt) needs a real QWidget
there, which a Protocol cannot be.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QMainWindow

if TYPE_CHECKING:
    from medseg_gui.core.segmentation import Segmentation
    from medseg_gui.core.volume import Volume
    from medseg_gui.rendering.slicing import Orientation
    from medseg_gui.ui.frame_scheduler import FrameScheduler
    from medseg_gui.ui.slice_widget import SliceViewWidget


class ViewerWindow(QMainWindow):
    """The study, the slice views and the window's services, implemented by ``MainWindow``.

    Attributes
    ----------
    volume, segmentation
        The study shown and the segmentation overlaid (and edited).
    views
        The slice views by orientation.
    frames
        Draws a view once per turn of the event loop.
    dialogs
        Show message boxes and questions (False headless: the status bar only).
    """

    volume: Volume | None
    segmentation: Segmentation | None
    views: dict[Orientation, SliceViewWidget]
    frames: FrameScheduler
    dialogs: bool

    def show_error(self, message: str) -> None:
        """Report a problem the user can fix (status bar, and a message box unless headless)."""
        raise NotImplementedError

    def render_all(self) -> None:
        """Draw every slice view now."""
        raise NotImplementedError

    def set_segmentation(self, segmentation: Segmentation | None, force: bool = False) -> bool:
        """Overlay and edit ``segmentation``; False if the user kept the edited one."""
        raise NotImplementedError
