"""Scrolling, clicking, window/level and the status readout."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from medseg_gui.rendering.slicing import Orientation
from tests.gui.conftest import LEFT, centroid, marker_volume, white

pytestmark = pytest.mark.gui


def wheel(widget, notches: int) -> None:  # type: ignore[no-untyped-def]
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(pos, widget.mapToGlobal(pos), QPoint(0, 0), QPoint(0, 120 * notches),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def test_wheel_and_arrows_change_the_slice(window, qtbot):  # type: ignore[no-untyped-def]
    window.set_volume(marker_volume("ras-thick", LEFT))
    axial = window.views[Orientation.AXIAL]
    before, z_before = axial.view.slice_index, window.crosshair[2]
    wheel(axial, 1)
    assert axial.view.slice_index != before
    assert window.crosshair[2] > z_before  # wheel up goes towards the head
    wheel(axial, -1)
    assert axial.view.slice_index == before
    qtbot.keyClick(axial, Qt.Key.Key_Up)
    assert window.crosshair[2] > z_before
    qtbot.keyClick(axial, Qt.Key.Key_Down)
    assert axial.view.slice_index == before
    # The other views keep their slices: scrolling moves along the axial normal only.
    for _ in range(100):
        wheel(axial, 1)
    assert axial.view.slice_index in (0, axial.view.layout.n_slices - 1)


def test_click_moves_the_crosshair_in_all_views(window, qtbot):  # type: ignore[no-untyped-def]
    window.set_volume(marker_volume("sagittal-acq", LEFT))
    window.set_crosshair((0.0, 0.0, 0.0))
    sagittal = window.views[Orientation.SAGITTAL]
    assert white(sagittal.capture()).sum() == 0  # the midline slice misses the marker
    axial = window.views[Orientation.AXIAL]
    x, y = centroid(white(axial.capture()))
    qtbot.mouseClick(axial, Qt.MouseButton.LeftButton, pos=QPoint(round(x), round(y)))
    np.testing.assert_allclose(window.crosshair[:2], LEFT[:2], atol=1.5)
    assert white(sagittal.capture()).sum() > 20  # the sagittal view followed to the marker
    coronal = window.views[Orientation.CORONAL]
    assert white(coronal.capture()).sum() > 20
    assert "HU 1000" in window.readout.text()


def test_display_and_world_round_trip(window):  # type: ignore[no-untyped-def]
    window.set_volume(marker_volume("flipped-xy", LEFT))
    for widget in window.views.values():
        widget.capture()
        world = np.array([3.0, -4.0, 5.0])
        window.set_crosshair(world)
        xy = widget.view.world_to_display(world)
        back = widget.view.display_to_world(*xy)
        in_plane = widget.view.layout.rotation[:, :2]
        np.testing.assert_allclose(back @ in_plane, world @ in_plane, atol=1e-6)


def test_presets_and_readout(window):  # type: ignore[no-untyped-def]
    names = {p.name.lower() for p in window.presets}
    assert {"lung", "mediastinum", "soft tissue", "bone", "brain", "liver"} <= names
    window.set_volume(marker_volume("lps-iso", LEFT))
    window.apply_preset("Lung")
    assert window.views[Orientation.CORONAL].view.window_level == (1500.0, -600.0)
    text = window.readout_text(LEFT)
    assert text.startswith("HU 1000") and "voxel (i" in text and "LPS (12.0, 0.0, 0.0)" in text
    assert window.readout_text((500.0, 0.0, 0.0)).startswith("outside")


def test_right_drag_changes_window(window, qtbot):  # type: ignore[no-untyped-def]
    window.set_volume(marker_volume("lps-iso", LEFT))
    axial = window.views[Orientation.AXIAL]
    w0, _ = axial.view.window_level
    centre = QPoint(axial.width() // 2, axial.height() // 2)
    qtbot.mousePress(axial, Qt.MouseButton.RightButton, pos=centre)
    qtbot.mouseMove(axial, centre + QPoint(60, 0))
    qtbot.mouseRelease(axial, Qt.MouseButton.RightButton, pos=centre + QPoint(60, 0))
    assert window.views[Orientation.SAGITTAL].view.window_level[0] > w0


def _frames_of(widget) -> list[int]:  # type: ignore[no-untyped-def]
    """A counter of the frames ``widget``'s render window draws from now on."""
    from vtkmodules.vtkCommonCore import vtkCommand

    count = [0]
    widget.GetRenderWindow().AddObserver(vtkCommand.EndEvent,
                                         lambda *_: count.__setitem__(0, count[0] + 1))
    return count


def test_a_key_burst_draws_the_latest_slice_once(window, qtbot):  # type: ignore[no-untyped-def]
    """Ten arrow presses waiting in the queue: one frame, showing the tenth step."""
    from PySide6.QtGui import QKeyEvent

    window.set_volume(marker_volume("lps-iso", LEFT))  # 41 axial slices, the 21st shown
    axial = window.views[Orientation.AXIAL]
    qtbot.wait(1000)  # the frames of loading (and the statistics refresh) are drawn
    window.frames._follow.setInterval(60_000)  # the pause is ended by hand below
    axial_frames, coronal_frames = _frames_of(axial), _frames_of(window.views[
        Orientation.CORONAL])
    before = axial.view.slice_index
    for _ in range(10):
        QApplication.postEvent(axial, QKeyEvent(QKeyEvent.Type.KeyPress, Qt.Key.Key_Down,
                                                Qt.KeyboardModifier.NoModifier))
    qtbot.waitUntil(lambda: axial_frames[0] >= 1, timeout=2000)
    assert axial.view.slice_index == before + 10  # down: towards the feet, +k here
    assert f"Axial {before + 11}/" in axial.view._info.GetInput()
    qtbot.wait(100)
    assert axial_frames[0] == 1
    assert coronal_frames[0] == 0  # only its crosshair line moved: it waits for the pause
    window.frames.draw_followers()
    assert axial_frames[0] == 1 and coronal_frames[0] == 1
    assert not window.frames.pending


def test_a_click_redraws_every_view_whose_plane_moved(window, qtbot):  # type: ignore[no-untyped-def]
    window.set_volume(marker_volume("lps-iso", LEFT))
    qtbot.wait(1000)
    counts = {o: _frames_of(w) for o, w in window.views.items()}
    window.set_crosshair(LEFT, source=window.views[Orientation.AXIAL])  # moves x only
    window.frames.draw_changed()
    assert counts[Orientation.AXIAL][0] == 1  # the source
    assert counts[Orientation.SAGITTAL][0] == 1  # its plane moved to x = 12 mm
    assert counts[Orientation.CORONAL][0] == 0  # same plane, only the line moved
    window.frames.draw_all()
    assert counts[Orientation.CORONAL][0] == 1


def test_views_requested_after_draw_after_the_changed_views(qtbot):  # type: ignore[no-untyped-def]
    """A stroke's other views (after=True) never draw before the view being painted."""
    from medseg_gui.ui.frame_scheduler import FrameScheduler

    order: list[str] = []

    class View:
        def __init__(self, name: str) -> None:
            self.name = name

        def render_view(self) -> None:
            order.append(self.name)

    scheduler = FrameScheduler()
    painted, other = View("painted"), View("other")
    scheduler.request(other, after=True)  # its timer fired first
    scheduler.request(painted)
    assert scheduler.pending
    qtbot.waitUntil(lambda: not scheduler.pending, timeout=1000)
    assert order == ["painted", "other"]
    scheduler.request(other, after=True)  # alone: drawn on the next turn all the same
    qtbot.waitUntil(lambda: not scheduler.pending, timeout=1000)
    assert order == ["painted", "other", "other"]
