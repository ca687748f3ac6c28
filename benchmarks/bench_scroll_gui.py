"""Arrow key to the new slice on screen, in the real window (run it under an X server).

The study is a 512 x 512 x 300 CT made from the shared CRLM-CT-1006 (its 51 slices resampled to
300 along z, as in ``bench_render.py``) with the HU-threshold overlay of ``bench_render.py``.
In the 2 x 2 layout of a 1400 x 900 window:

* single steps: one ``Key_Down`` at a time (a real ``QKeyEvent`` through ``QApplication``);
  the clock runs until the axial view has drawn a frame showing the new slice and one of its
  pixels was read back. Also counted: the frames all three slice views drew per step;
* bursts: 10 ``Key_Down`` events posted at once (what a held key or a fast wheel leaves in the
  queue while a frame is drawn); the clock runs until the axial view shows the 10th step, and
  the frames the axial view drew on the way are counted (1 = no backlog).

Named baseline: the same window driven without the event queue: every slice view moved to the
new crosshair and all three rendered synchronously per step (what every step cost before frames
were coalesced: three views drawn, one after the other, for each step), run in the same
process. Usage::

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/bench_scroll_gui.py [CT_FOLDER]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from vtkmodules.vtkCommonCore import vtkCommand, vtkUnsignedCharArray

from benchmarks.bench_render import DEFAULT_CT, _labels, thin_sliced
from medseg_gui.io.loader import load_volume
from medseg_gui.rendering.slicing import Orientation


def _counter(widget: Any) -> list[int]:
    count = [0]
    widget.GetRenderWindow().AddObserver(vtkCommand.EndEvent,
                                         lambda *_: count.__setitem__(0, count[0] + 1))
    return count


def _down() -> QKeyEvent:
    return QKeyEvent(QKeyEvent.Type.KeyPress, Qt.Key.Key_Down, Qt.KeyboardModifier.NoModifier)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("ct", nargs="?", default=str(DEFAULT_CT))
    p.add_argument("-n", type=int, default=60, help="single steps (and 10-step bursts / 6)")
    args = p.parse_args()
    app = QApplication.instance() or QApplication([sys.argv[0]])
    from medseg_gui.ui.main_window import MainWindow

    study = thin_sliced(load_volume(args.ct), 300)
    window = MainWindow(dialogs=False)
    window.resize(1400, 900)
    window.show()
    QTest.qWaitForWindowExposed(window)
    window.set_volume(study)
    window.set_segmentation(_labels(study), force=True)
    QTest.qWait(1500)
    axial = window.views[Orientation.AXIAL]
    window.set_crosshair(axial.view.step_world(-300))  # the first slice
    QTest.qWait(500)
    frames = {o: _counter(w) for o, w in window.views.items()}
    rw, pixel = axial.GetRenderWindow(), vtkUnsignedCharArray()

    def until_shown(index: int, t0: float) -> float:
        while axial.view.slice_index != index or frames[Orientation.AXIAL][0] == drawn[0]:
            app.processEvents()
            if time.perf_counter() - t0 > 5:
                break
        w, h = rw.GetSize()
        rw.GetPixelData(w // 2, h // 2, w // 2, h // 2, 0, pixel, 0)
        return (time.perf_counter() - t0) * 1e3

    def step_all(world: Any) -> None:
        for widget in window.views.values():
            widget.view.set_crosshair(world)
        for widget in window.views.values():
            widget.render_view()

    drawn = [0]
    rows = []
    for name, synchronous in (("baseline: render all views per step", True),
                              ("viewer: key events through the queue", False)):
        window.set_crosshair(axial.view.step_world(-300))  # from the first slice again
        QTest.qWait(300)
        single, per_step = [], []
        for _ in range(args.n):
            before = sum(c[0] for c in frames.values())
            drawn[0] = frames[Orientation.AXIAL][0]
            target = axial.view.slice_index + 1
            t0 = time.perf_counter()
            if synchronous:
                step_all(axial.view.step_world(1))
            else:
                QApplication.postEvent(axial, _down())
            single.append(until_shown(target, t0))
            per_step.append(sum(c[0] for c in frames.values()) - before)
        QTest.qWait(300)
        burst, burst_frames = [], []
        for _ in range(max(3, args.n // 6)):
            drawn[0] = frames[Orientation.AXIAL][0]
            target = axial.view.slice_index + 10
            t0 = time.perf_counter()
            if synchronous:
                for _ in range(10):
                    step_all(axial.view.step_world(1))
            else:
                for _ in range(10):
                    QApplication.postEvent(axial, _down())
            burst.append(until_shown(target, t0))
            burst_frames.append(frames[Orientation.AXIAL][0] - drawn[0])
            QTest.qWait(150)  # the followers' pause
        rows.append((name, single, per_step, burst, burst_frames))
    print(f"window 1400x900, axial view {rw.GetSize()[0]}x{rw.GetSize()[1]} px, study "
          f"512x512x300 with overlay, {args.n} single steps, {len(rows[0][3])} bursts of 10")
    print(f"{'':38s}{'step median':>12s}{'p95':>8s}{'max':>8s}{'views/step':>11s}"
          f"{'burst median':>13s}{'frames/burst':>13s}")
    for name, single, per_step, burst, burst_frames in rows:
        s = sorted(single)
        print(f"{name:38s}{statistics.median(s):12.1f}{s[int(0.95 * (len(s) - 1))]:8.1f}"
              f"{s[-1]:8.1f}{statistics.mean(per_step):11.2f}{statistics.median(burst):13.1f}"
              f"{statistics.mean(burst_frames):13.2f}")
    print("ms; views/step: slice views drawn per step within the step (the others follow on the "
          "pause); frames/burst: axial frames drawn for 10 queued steps")
    window.close()


if __name__ == "__main__":
    main()
