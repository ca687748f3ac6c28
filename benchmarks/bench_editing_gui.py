"""Mouse event to the brush on screen, in the real window (run it under an X server).

Paint strokes of N synthetic mouse moves in the axial view (``QTest.mouseMove``: a real
``QMouseEvent`` through Qt's event delivery). Each move paints new voxels: it moves the brush
2 mm, along passes a brush width apart that never retrace. A move counts as on screen when the
axial view has finished a frame (drawn and swapped) that started after the move was handled,
and that frame's pixel under the brush, read back *from the X server* (what the screen shows,
not VTK's own buffer) inside the frame's end callback, shows the segment's colour ("pixels ok").
The time runs from the move to that read-back's return. Two ways to move the mouse:

* one move at a time: the next move is sent once the previous one is on screen and the event
  loop has turned (Qt repaints the status bar's readout there, and the viewer's timers run);
* 60 moves/s: moves are due every 16.7 ms whatever the viewer does, as a mouse sends them
  during a quick stroke (12 cm/s). A move due while the viewer is busy is handled when it is
  free (as a queued X event would be) and its time counts from when it was due, so frames of
  the other views, or a slow frame, delay the moves behind them. Frames coalesce moves.

Between strokes the viewer finishes what a stroke leaves behind (3D surfaces and statistics on
the thread pool), so each stroke starts on an idle viewer.

Named baseline, run in the same process on the same window and strokes (one move at a time):
"full refresh", what the viewer did before incremental updates: after every stamp
``SliceView.set_labels`` on every view and a render of every slice view.

Usage::

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/bench_editing_gui.py [--moves 200]

Volumes: the bundled demo CT (51 x 137 x 141) and a synthetic 300 x 512 x 512 CT (the size the
issue names for the brush benchmark). Goal (issue 17): p95 <= 16 ms, no move over 50 ms.
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

from PySide6.QtCore import QEventLoop, QPoint, Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from vtkmodules.vtkCommonCore import vtkCommand

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.volume import StudyInfo, Volume
from medseg_gui.rendering.slicing import Orientation

STEP_MM, BRUSH_MM, PASS_PX = 2.0, 10.0, 160


def big_volume() -> Volume:
    g = Geometry(shape=(300, 512, 512), spacing=(0.8, 0.8, 1.0))
    rng = np.random.default_rng(0)
    arr = (rng.normal(40, 20, g.shape)).astype(np.int16)
    return Volume(arr, g, info=StudyInfo(modality="CT"))


def stroke(window: Any, moves: int, naive: bool, rate_hz: float | None = None
           ) -> tuple[list[float], int]:
    """One paint stroke of ``moves`` events, one at a time or due at ``rate_hz``.

    Returns each move's seconds to the screen and how many frames' read-backs showed the
    segment under the brush (one per move when moves go one at a time).
    """
    widget = window.views[Orientation.AXIAL]
    controller = window.editing
    rw = widget.GetRenderWindow()
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

    handled: list[tuple[float, float, QPoint]] = []  # (due, handled, position) per move
    shown: list[tuple[float, float]] = []  # (frame start, on screen) per verified frame
    started = [0.0]
    screen = widget.screen()

    def frame_start(*_: Any) -> None:
        started[0] = time.perf_counter()

    def frame_end(*_: Any) -> None:
        before = [h for h in handled if h[1] < started[0]]
        if not before:
            return
        p = before[-1][2]  # the latest move this frame shows
        pixel = screen.grabWindow(widget.winId(), p.x(), p.y(), 1, 1).toImage().pixelColor(0, 0)
        if pixel.red() - pixel.blue() > 40:  # the red of segment 1 over the grey CT
            shown.append((started[0], time.perf_counter()))

    observers = [rw.AddObserver(vtkCommand.StartEvent, frame_start),
                 rw.AddObserver(vtkCommand.EndEvent, frame_end)]
    QTest.mousePress(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(0))
    editor = controller.editor
    if naive:
        def full_refresh(_region: Any) -> None:
            for w in window.views.values():
                w.view.set_labels(window.segmentation)
            window.render_all()
        editor._listeners[:] = [full_refresh]
    t_start = time.perf_counter()
    n = 1
    while n <= moves:
        if rate_hz is not None:
            due = t_start + n / rate_hz
            wait_ms = int((due - time.perf_counter()) * 1000)
            if wait_ms > 0:  # idle in the event loop (timers run) until the move is due
                loop = QEventLoop()
                QTimer.singleShot(wait_ms, loop.quit)
                loop.exec()
            while time.perf_counter() < due:  # the timer's last millisecond
                pass
        # Every move that is due is handled before the event loop turns, as Qt reads all
        # queued input events before it runs timers (where the viewer draws).
        last = n if rate_hz is None else max(n, min(moves, int((time.perf_counter() - t_start)
                                                               * rate_hz)))
        verified = len(shown)
        for m in range(n, last + 1):
            due = time.perf_counter() if rate_hz is None else t_start + m / rate_hz
            p = at(m)
            QTest.mouseMove(widget, p)
            handled.append((due, time.perf_counter(), p))
        n = last + 1
        # At least one turn of the event loop, as between two real mouse events.
        app.processEvents()  # type: ignore[union-attr]
        while rate_hz is None and len(shown) == verified and \
                time.perf_counter() - handled[-1][0] < 2.0:
            app.processEvents()  # type: ignore[union-attr]
    while shown and shown[-1][0] < handled[-1][1] and time.perf_counter() - t_start < 60:
        app.processEvents()  # type: ignore[union-attr]  # the last moves' frame
    QTest.mouseRelease(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, c)
    for observer in observers:
        rw.RemoveObserver(observer)
    if naive:
        editor._listeners[:] = [controller._on_region]
    controller.undo()
    # Each move's time: to the first verified frame that started after it was handled.
    times = []
    for due, done, _ in handled:
        end = next((e for s, e in shown if s > done), None)
        times.append((end if end is not None else float("inf")) - due)
    return times, len(shown)


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
    print(f"{'volume':<20}{'update, moves':<28}{'median ms':>10}{'p95 ms':>9}{'max ms':>9}"
          f"{'frames ok':>11}{'full/ours':>11}")
    for name, volume in (("demo 141x137x51", demo_volume()), ("512x512x300", big_volume())):
        window.set_volume(volume)
        window.editing.set_tool(Tool.PAINT)
        window.editing.set_brush(diameter_mm=BRUSH_MM)
        app.processEvents()
        stroke(window, 10, naive=False)  # warm-up: segment, caches, textures
        settle(window)
        rows = []
        for label, naive, rate, n in (("incremental, one at a time", False, None, args.moves),
                                      ("incremental, 60 moves/s", False, 60.0, args.moves),
                                      ("full (baseline), one at a time", True, None,
                                       max(20, args.moves // 4))):
            times, ok = stroke(window, n, naive=naive, rate_hz=rate)
            settle(window)
            rows.append((label, ms(times), ok, n))
        base = rows[2][1][0]
        for label, m, ok, n in rows:
            ratio = f"{base / m[0]:>11.1f}" if label.startswith("incremental") else ""
            print(f"{name:<20}{label:<28}{m[0]:>10.2f}{m[1]:>9.2f}{m[2]:>9.2f}"
                  f"{f'{ok}/{n}':>11}{ratio}")
        window.editing.set_segmentation(None)
        window.set_segmentation(None, force=True)
    print("frames ok: frames whose pixel under the brush, read from the X server, showed the "
          "segment (one per move when moves go one at a time; frames coalesce moves at 60/s)")
    window.close()


if __name__ == "__main__":
    main()
