"""Frame times of the viewer's rendering: slice changes with an overlay, and 3D interaction.

Run on an X server (Xvfb is enough; it then measures Mesa's software OpenGL, llvmpipe)::

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/bench_render.py [CT_FOLDER]

The default CT is the shared CRLM-CT-1006 (512 x 512 x 51, 0.8 x 0.8 x 5 mm). The overlay is an
HU-threshold label map (label 1: 100..300 HU, contrast-enhanced tissue; label 2: > 300 HU, bone),
so it has realistic, fragmented shapes on every slice. Baselines run in the same process:

* slice change: ``vtkImageViewer2`` (VTK's stock slice viewer) stepping through the same CT,
  without an overlay;
* 3D frame: the same scene with the level of detail off (every frame at still quality).

Goals (issue 3): slice scrolling within 16 ms (60 fps), 3D interaction within 100 ms (10 fps).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import vtkmodules.vtkInteractionImage  # noqa: F401  (vtkImageViewer2)
from vtkmodules.vtkInteractionImage import vtkImageViewer2
from vtkmodules.vtkRenderingCore import vtkRenderWindow

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medseg_gui.core.segmentation import Segment, Segmentation  # noqa: E402
from medseg_gui.io.loader import load_volume  # noqa: E402
from medseg_gui.rendering.imagedata import to_vtk_image  # noqa: E402
from medseg_gui.rendering.slice_view import SliceView  # noqa: E402
from medseg_gui.rendering.slicing import Orientation  # noqa: E402
from medseg_gui.rendering.volume_render import Scene3D, load_volume_presets  # noqa: E402

DEFAULT_CT = ROOT.parent / "shared" / "data" / "crlm_unlabeled" / "CRLM-CT-1006" / "image"
SLICE_SIZE = (700, 700)
VIEW3D_SIZE = (600, 500)


def _times(step: Callable[[int], None], n: int, warmup: int = 3) -> list[float]:
    for i in range(warmup):
        step(i)
    out = []
    for i in range(n):
        t = time.perf_counter()
        step(warmup + i)
        out.append((time.perf_counter() - t) * 1000.0)
    return out


def _window(size: tuple[int, int]) -> vtkRenderWindow:
    window = vtkRenderWindow()
    window.SetSize(*size)
    window.SetOffScreenRendering(1)
    return window


def bench_slices(volume, seg, n: int) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    out: dict[str, list[float]] = {}
    nz = volume.geometry.shape[0]

    viewer = vtkImageViewer2()
    viewer.SetRenderWindow(_window(SLICE_SIZE))
    viewer.SetInputData(to_vtk_image(volume.array, volume.geometry, with_direction=False))
    viewer.SetSliceOrientationToXY()
    viewer.SetColorWindow(400)
    viewer.SetColorLevel(40)
    viewer.Render()

    def stock(i: int) -> None:
        viewer.SetSlice(i % nz)
        viewer.Render()

    out["baseline: vtkImageViewer2, no overlay"] = _times(stock, n)

    view = SliceView(Orientation.AXIAL)
    window = _window(SLICE_SIZE)
    window.AddRenderer(view.renderer)
    view.set_volume(volume)
    view.set_window_level(400, 40)

    def scroll(i: int) -> None:
        world = view.step_world(1 if (i // nz) % 2 == 0 else -1)
        view.set_crosshair(world)
        window.Render()

    out["SliceView, no overlay"] = _times(scroll, n)
    view.set_labels(seg)
    out["SliceView + overlay (fill)"] = _times(scroll, n)
    view.set_label_style(0.6, outline=True)
    out["SliceView + overlay (outline)"] = _times(scroll, n)
    return out


def bench_3d(volume, n: int) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    scene = Scene3D()
    scene.set_preset(next(p for p in load_volume_presets() if p.name == "Bone"))
    scene.set_volume(volume)
    window = _window(VIEW3D_SIZE)
    window.AddRenderer(scene.renderer)
    window.Render()

    def rotate(_i: int) -> None:
        scene.renderer.GetActiveCamera().Azimuth(5.0)
        scene.renderer.ResetCameraClippingRange()
        window.Render()

    out: dict[str, list[float]] = {}
    scene.set_interactive(window, False)
    out["baseline: 3D frame, LOD off (still quality)"] = _times(rotate, max(5, n // 4))
    scene.set_interactive(window, True)
    out["3D frame while rotating, LOD on"] = _times(rotate, n)
    scene.set_interactive(window, False)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ct", nargs="?", default=str(DEFAULT_CT), help="CT folder or image file")
    p.add_argument("-n", type=int, default=100, help="frames per measurement")
    args = p.parse_args(argv)
    volume = load_volume(args.ct)
    hu = volume.array
    labels = np.zeros(hu.shape, np.uint8)
    labels[(hu > 100) & (hu <= 300)] = 1
    labels[hu > 300] = 2
    seg = Segmentation(labels, volume.geometry, [Segment(1, "enhancing", color=(230, 159, 0)),
                                                 Segment(2, "bone", color=(86, 180, 233))])
    probe = _window((64, 64))
    probe.Render()
    renderer_name = probe.ReportCapabilities().split("OpenGL renderer string:")[-1].split("\n")[0]
    print(f"CT {args.ct}: {volume.geometry.shape[::-1]} voxels; overlay voxels "
          f"{int((labels > 0).sum())}; OpenGL renderer:{renderer_name}")
    print(f"slice view {SLICE_SIZE[0]}x{SLICE_SIZE[1]} px, 3D view {VIEW3D_SIZE[0]}x"
          f"{VIEW3D_SIZE[1]} px, {args.n} frames each\n")
    rows = {**bench_slices(volume, seg, args.n), **bench_3d(volume, args.n)}
    base_slice = statistics.median(rows["baseline: vtkImageViewer2, no overlay"])
    base_3d = statistics.median(rows["baseline: 3D frame, LOD off (still quality)"])
    print(f"{'measurement':46s} {'median ms':>10s} {'p95 ms':>9s} {'x baseline':>11s}")
    for name, times in rows.items():
        base = base_3d if "3D" in name else base_slice
        med = statistics.median(times)
        p95 = float(np.percentile(times, 95))
        print(f"{name:46s} {med:10.1f} {p95:9.1f} {med / base:11.2f}")
    print("\ngoals: slice change <= 16 ms, 3D interaction <= 100 ms per frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
