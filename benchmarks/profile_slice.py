"""Where a slice change with the overlay goes, stage by stage (run it under an X server).

The study and overlay of ``bench_render.py`` (the CT resampled to 512 x 512 x 300, the HU-threshold
label map), one axial ``SliceView`` in a 700 x 700 off-screen window without multisampling.
For each of N slice steps, timed separately:

* CPU, per layer: the plane (a numpy view here), the colours (code table), the tiles to draw,
  and handing the texture and quads to VTK (``SliceLayer.show``);
* the render of the changed scene (texture uploads included) until a pixel is read back, and
  the same scene rendered again unchanged (shading only);
* what each part of the scene costs to shade: the frame with that part hidden, subtracted from
  the frame with it shown (interleaved, medians).

Usage::

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/profile_slice.py [CT] [-n 60]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_render import DEFAULT_CT, SLICE_SIZE, _frame, _labels, _window, thin_sliced
from medseg_gui.io.loader import load_volume
from medseg_gui.rendering import slice_layer
from medseg_gui.rendering.slice_source import apply_table, nonzero_box
from medseg_gui.rendering.slice_view import SliceView
from medseg_gui.rendering.slicing import Orientation


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ct", nargs="?", default=str(DEFAULT_CT))
    p.add_argument("-n", type=int, default=60)
    args = p.parse_args()
    study = thin_sliced(load_volume(args.ct), 300)
    view = SliceView(Orientation.AXIAL)
    window = _window(SLICE_SIZE)
    window.AddRenderer(view.renderer)
    view.set_volume(study)
    view.set_window_level(400, 40)
    view.set_labels(_labels(study))
    view.set_crosshair(view.step_world(-150))
    _frame(window)
    stages: dict[str, list[float]] = {}
    last = [0.0]

    def lap(name: str) -> None:  # the time since the previous lap goes to ``name``
        now = time.perf_counter()
        stages.setdefault(name, []).append(now - last[0])
        last[0] = now

    assert view.layout is not None
    layout = view.layout
    for _ in range(args.n):
        last[0] = time.perf_counter()
        view.set_crosshair(view.step_world(1))
        lap("slice step (crosshair, text)")
        ct = view._image_source.plane(layout, view.slice_index)
        lap("CT: plane")
        grey = apply_table(view._grey_table, ct)
        lap("CT: grey (code table)")
        slice_layer._kept_quads(slice_layer._filled(grey))
        lap("CT: tiles to draw")
        view._image.show(grey)
        lap("CT: show (tiles, quads, texture)")
        labels = view._label_source.plane(layout, view.slice_index)
        lap("labels: plane")
        r0, r1, c0, c1 = nonzero_box(labels)
        lap("labels: box of non-zero")
        rgba = apply_table(view._label_table, labels[r0:r1, c0:c1])
        lap("labels: colours (box)")
        view._labels.show(rgba, r0, c0)
        lap("labels: show (tiles, quads, texture)")
        view._drawn = {name: (view.slice_index, v) for name, v in view._versions.items()}
        last[0] = time.perf_counter()
        _frame(window)
        lap("render, uploads, read-back")
        _frame(window)
        lap("render unchanged, read-back")

    shading: dict[str, list[float]] = {}
    parts = {"CT quads": [view._image.actor], "label quads": [view._labels.actor],
             "crosshair": [view._cross], "text and letters": [view._info, *view._letters]}
    for _ in range(max(10, args.n // 3)):
        for name, actors in parts.items():
            shown = [a.GetVisibility() for a in actors]
            for a in actors:
                a.VisibilityOff()
            _frame(window)
            t = time.perf_counter()
            _frame(window)
            off = time.perf_counter() - t
            for a, v in zip(actors, shown, strict=True):
                a.SetVisibility(v)
            _frame(window)
            t = time.perf_counter()
            _frame(window)
            shading.setdefault(name, []).append(time.perf_counter() - t - off)
    quads = slice_layer._kept_quads(slice_layer._filled(grey))
    ct_area = float(((quads[:, 1] - quads[:, 0]) * (quads[:, 3] - quads[:, 2])).sum() / grey.size)
    quads = slice_layer._kept_quads(slice_layer._filled(rgba))
    lab_area = float(((quads[:, 1] - quads[:, 0]) * (quads[:, 3] - quads[:, 2])).sum()
                     / grey.size)
    print(f"slice view {SLICE_SIZE[0]}x{SLICE_SIZE[1]} px, study 512x512x300 with overlay, "
          f"{args.n} steps; drawn: CT {ct_area:.0%} of the slice, labels {lab_area:.0%}")
    print(f"{'stage':44s}{'median ms':>10s}{'p95 ms':>9s}")
    for name, times in list(stages.items()) + [(f"shading: {k}", v) for k, v in shading.items()]:
        print(f"{name:44s}{statistics.median(times) * 1e3:10.2f}"
              f"{float(np.percentile(times, 95)) * 1e3:9.2f}")
    window.Finalize()


if __name__ == "__main__":
    main()
