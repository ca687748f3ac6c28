"""Mouse event to updated overlay pixels, in the real window (run it under an X server).

For each of N synthetic mouse moves of a paint stroke in the axial view (``QTest.mouseMove``:
a real ``QMouseEvent`` through Qt's event delivery), the clock runs from sending the event
until the event loop has turned at least once (as it does between real mouse events: Qt
repaints the status bar's readout there), the axial view has drawn a frame after the event
(events are processed until its render window reports one: the viewer may draw on the next
turn of the event loop) and one pixel under the brush has been read back from the view's frame
buffer (a read-back waits for the GPU / software rasteriser to finish the frame). The pixel is
then checked to show the segment's colour, so the time covers the stamp, the reslice of the
edited slice and the frame. Each event moves the brush 2 mm (at 60 events/s a quick 12 cm/s
stroke), so every event stamps new voxels. Between strokes the viewer is left to finish what
a stroke leaves behind (3D surfaces and statistics on the thread pool), so each stroke starts
on an idle viewer.

Named baseline, run in the same process on the same window and strokes: "full refresh", what
the viewer did before incremental updates: after every stamp ``SliceView.set_labels`` on every
view (re-wraps the label map, scans it for its maximum, rebuilds the colour table) and a render
of every slice view.

Usage::

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/bench_editing_gui.py [--moves 200]

Volumes: the bundled demo CT (51 x 137 x 141) and a synthetic 300 x 512 x 512 CT (the size the
issue names for the brush benchmark).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from vtkmodules.vtkCommonCore import vtkCommand, vtkUnsignedCharArray

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.volume import StudyInfo, Volume
from medseg_gui.rendering.slicing import Orientation

STEP_MM, BRUSH_MM, PASS_PX = 2.0, 10.0, 160


def big_volume() -> Volume:
    g = Geometry(shape=(300, 512, 512), spacing=(0.8, 0.8, 1.0))
    rng = np.random.default_rng(0)
    arr = (rng.normal(40, 20, g.shape)).astype(np.int16)
    return Volume(arr, g, info=StudyInfo(modality="CT"))


def stroke(window: Any, moves: int, naive: bool) -> tuple[list[float], int]:
    """One paint stroke of ``moves`` events; returns per-event seconds and verified pixels."""
    widget = window.views[Orientation.AXIAL]
    controller = window.editing
    rw = widget.GetRenderWindow()
    pixel = vtkUnsignedCharArray()
    frames = [0]
    observer = rw.AddObserver(vtkCommand.EndEvent,
                              lambda *_: frames.__setitem__(0, frames[0] + 1))
    app = QApplication.instance()
    c = QPoint(widget.width() // 2, widget.height() // 5)
    widget.render_view()
    mm_per_px = 2 * widget.view.renderer.GetActiveCamera().GetParallelScale() / widget.height()
    step = max(1, round(STEP_MM / mm_per_px))  # every event moves the brush STEP_MM
    row = round(BRUSH_MM / mm_per_px)  # passes a brush apart: every stamp paints new voxels
    per_pass = PASS_PX // step

    def at(n: int) -> QPoint:  # a raster of passes, a brush width apart, never retraced
        k, along = divmod(n, per_pass)
        x = along * step - PASS_PX // 2
        return c + QPoint(x if k % 2 == 0 else -x, (k * row) % (widget.height() // 2))

    QTest.mousePress(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(0))
    editor = controller.editor
    if naive:
        def full_refresh(_region: Any) -> None:
            for w in window.views.values():
                w.view.set_labels(window.segmentation)
            window.render_all()
        editor._listeners[:] = [full_refresh]
    times, verified = [], 0
    for n in range(1, moves + 1):
        p = at(n)
        x, y = widget._display_xy(QPointF(p))
        t0 = time.perf_counter()
        drawn = frames[0]
        QTest.mouseMove(widget, p)
        # At least one turn of the event loop, as between two real mouse events (Qt repaints
        # the status bar there, and a viewer may draw there), until the view has drawn.
        app.processEvents()  # type: ignore[union-attr]
        while frames[0] == drawn and time.perf_counter() - t0 < 2.0:
            app.processEvents()  # type: ignore[union-attr]
        # Read back the pixel under the mouse: returns once the frame is rasterised.
        rw.GetPixelData(int(x), int(y), int(x), int(y), 0, pixel, 0)
        times.append(time.perf_counter() - t0)
        r, _, b = (int(pixel.GetValue(i)) for i in range(3))
        verified += int(r - b > 40)  # the red of segment 1 over the grey CT
    QTest.mouseRelease(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, c)
    rw.RemoveObserver(observer)
    if naive:
        editor._listeners[:] = [controller._on_region]
    controller.undo()
    return times, verified


def settle(window: Any, timeout_s: float = 20.0) -> None:
    """Let the work a stroke leaves behind finish (the 3D surfaces and the statistics, built
    on the thread pool), so that every stroke starts on an idle viewer."""
    from PySide6.QtCore import QThreadPool

    app = QApplication.instance()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        app.processEvents()  # type: ignore[union-attr]
        QThreadPool.globalInstance().waitForDone(50)
        if not window.view3d.building and QThreadPool.globalInstance().activeThreadCount() == 0:
            QTest.qWait(600)  # the debounced follow-ups (3D frame, statistics) run now
            app.processEvents()  # type: ignore[union-attr]
            if not window.view3d.building and \
                    QThreadPool.globalInstance().activeThreadCount() == 0:
                return


def ms(times: list[float]) -> tuple[float, float, float]:
    t = sorted(times)
    return (statistics.median(t) * 1e3, t[int(0.95 * (len(t) - 1))] * 1e3, t[-1] * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--moves", type=int, default=200)
    parser.add_argument("--size", default="1400x900", help="window size")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([sys.argv[0]])
    from medseg_gui.ui.main_window import MainWindow
    from medseg_gui.ui.tool_panel import Tool
    from tests.gui.editing_helpers import demo_volume

    width, height = (int(v) for v in args.size.split("x"))
    window = MainWindow(dialogs=False)
    window.resize(width, height)
    window.show()
    QTest.qWaitForWindowExposed(window)
    axial = window.views[Orientation.AXIAL]
    print(f"window {width}x{height}, axial view {axial.width()}x{axial.height()} px, "
          f"{args.moves} mouse moves per stroke, 10 mm 2D brush")
    print(f"{'volume':<22}{'update':<16}{'median ms':>10}{'p95 ms':>9}{'max ms':>9}"
          f"{'pixels ok':>11}{'full/ours':>11}")
    for name, volume in (("demo 141x137x51", demo_volume()), ("512x512x300", big_volume())):
        window.set_volume(volume)
        window.editing.set_tool(Tool.PAINT)
        window.editing.set_brush(diameter_mm=BRUSH_MM)
        app.processEvents()
        stroke(window, 10, naive=False)  # warm-up: segment, caches, textures
        settle(window)
        ours, ok = stroke(window, args.moves, naive=False)
        settle(window)
        full, ok_full = stroke(window, max(20, args.moves // 4), naive=True)
        settle(window)
        m_ours, m_full = ms(ours), ms(full)
        for label, m, good, n in (("incremental", m_ours, ok, len(ours)),
                                  ("full (baseline)", m_full, ok_full, len(full))):
            ratio = f"{m_full[0] / m_ours[0]:>11.1f}" if label == "incremental" else ""
            print(f"{name:<22}{label:<16}{m[0]:>10.2f}{m[1]:>9.2f}{m[2]:>9.2f}"
                  f"{f'{good}/{n}':>11}{ratio}")
        window.editing.set_segmentation(None)
        window.set_segmentation(None, force=True)
    window.close()


if __name__ == "__main__":
    main()
