"""Frame times of the viewer's rendering: slice changes with an overlay, and 3D interaction.

Run on an X server (Xvfb is enough; it then measures Mesa's software OpenGL, llvmpipe)::

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/bench_render.py [CT_FOLDER]

The default CT is the shared CRLM-CT-1006 (512 x 512 x 51, 0.8 x 0.8 x 5 mm). The overlay is an
HU-threshold label map (label 1: 100..300 HU, contrast-enhanced tissue; label 2: > 300 HU, bone),
so it has realistic, fragmented shapes on every slice. Baselines run in the same process:

* slice change: ``vtkImageViewer2`` (VTK's stock slice viewer) stepping through the same CT,
  without an overlay;
* whole study: a 512 x 512 x 300 study (the CT's 51 slices resampled to 300 along z, nearest
  slice, so every slice is real CT; the overlay as above) scrolled from the first slice to the
  last, once with ``vtkImageViewer2`` without an overlay, once with ``vtkImageViewer2`` and the
  overlay as a second ``vtkImageActor`` (what one would build from stock VTK), and once with
  ``SliceView`` and the overlay; frames per second over the whole scroll and the worst frame;
* 3D frame: the same scene with the level of detail off (every frame at still quality).

Every frame is timed until one of its pixels is read back, which waits for the software
rasteriser to finish it (``Render`` alone can return before llvmpipe has drawn the frame).
Slice windows have multisampling off, as ``SliceViewWidget`` has; the 3D window keeps VTK's
default (8 samples), as ``View3DWidget`` does.

GPU figures are not taken here (the machine this was written on has no GPU); a run on a GPU
machine needs an X server on the GPU or VTK built with EGL, which the wheel from PyPI is not.

Goals (issue 17): slice change with overlay <= 16 ms median and <= 33 ms p95 at 512 x 512;
3D frame while rotating <= 100 ms median.
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
from vtkmodules.vtkCommonCore import vtkUnsignedCharArray
from vtkmodules.vtkImagingCore import vtkImageMapToColors
from vtkmodules.vtkInteractionImage import vtkImageViewer2
from vtkmodules.vtkRenderingCore import vtkImageActor, vtkRenderWindow

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medseg_gui.core.geometry import Geometry  # noqa: E402
from medseg_gui.core.segmentation import Segment, Segmentation  # noqa: E402
from medseg_gui.core.volume import Volume  # noqa: E402
from medseg_gui.io.loader import load_volume  # noqa: E402
from medseg_gui.rendering.imagedata import to_vtk_image  # noqa: E402
from medseg_gui.rendering.overlay import label_lookup_table  # noqa: E402
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


def _window(size: tuple[int, int], multisamples: int | None = 0) -> vtkRenderWindow:
    """An off-screen window; ``multisamples=None`` keeps VTK's default."""
    window = vtkRenderWindow()
    window.SetSize(*size)
    window.SetOffScreenRendering(1)
    if multisamples is not None:
        window.SetMultiSamples(multisamples)
    return window


_PIXEL = vtkUnsignedCharArray()


def _frame(window: vtkRenderWindow) -> None:
    """Render and read one pixel back: returns once the frame is rasterised."""
    window.Render()
    w, h = window.GetSize()
    window.GetPixelData(w // 2, h // 2, w // 2, h // 2, 0, _PIXEL, 0)


def _labels(volume: Volume) -> Segmentation:
    hu = volume.array
    labels = np.zeros(hu.shape, np.uint8)
    labels[(hu > 100) & (hu <= 300)] = 1
    labels[hu > 300] = 2
    return Segmentation(labels, volume.geometry, [Segment(1, "enhancing", color=(230, 159, 0)),
                                                  Segment(2, "bone", color=(86, 180, 233))])


def thin_sliced(volume: Volume, n: int) -> Volume:
    """``volume`` resampled to ``n`` slices along k (nearest slice): real CT on every slice."""
    k = volume.geometry.shape[0]
    index = np.minimum((np.arange(n) * k) // n, k - 1)
    g = volume.geometry
    spacing = (g.spacing[0], g.spacing[1], g.spacing[2] * k / n)
    return Volume(np.ascontiguousarray(volume.array[index]),
                  Geometry(shape=(n, *g.shape[1:]), spacing=spacing, origin=g.origin,
                           direction=g.direction), info=volume.info)


def bench_slices(volume, seg, n: int) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    out: dict[str, list[float]] = {}
    nz = volume.geometry.shape[0]

    viewer = _stock_viewer(volume, None)

    def stock(i: int) -> None:
        viewer.SetSlice(i % nz)
        _frame(viewer.GetRenderWindow())

    out["baseline: vtkImageViewer2, no overlay"] = _times(stock, n)

    view = SliceView(Orientation.AXIAL)
    window = _window(SLICE_SIZE)
    window.AddRenderer(view.renderer)
    view.set_volume(volume)
    view.set_window_level(400, 40)

    def scroll(i: int) -> None:
        world = view.step_world(1 if (i // nz) % 2 == 0 else -1)
        view.set_crosshair(world)
        _frame(window)

    out["SliceView, no overlay"] = _times(scroll, n)
    view.set_labels(seg)
    out["SliceView + overlay (fill)"] = _times(scroll, n)
    view.set_label_style(0.6, outline=True)
    out["SliceView + overlay (outline)"] = _times(scroll, n)
    return out


def _stock_viewer(volume: Volume, seg: Segmentation | None) -> vtkImageViewer2:
    viewer = vtkImageViewer2()
    viewer.SetRenderWindow(_window(SLICE_SIZE))
    viewer.SetInputData(to_vtk_image(volume.array, volume.geometry, with_direction=False))
    viewer.SetSliceOrientationToXY()
    viewer.SetColorWindow(400)
    viewer.SetColorLevel(40)
    if seg is not None:
        colors = vtkImageMapToColors()
        colors.SetInputData(to_vtk_image(seg.labelmap, seg.geometry, with_direction=False))
        colors.SetLookupTable(label_lookup_table(seg.segments, 2))
        colors.SetOutputFormatToRGBA()
        actor = vtkImageActor()
        actor.GetMapper().SetInputConnection(colors.GetOutputPort())
        actor.GetProperty().SetOpacity(0.45)
        actor.GetProperty().SetInterpolationTypeToNearest()
        actor.SetPosition(0.0, 0.0, 0.5 * volume.geometry.spacing[2])
        viewer.GetRenderer().AddViewProp(actor)
        viewer.overlay_actor = actor  # type: ignore[attr-defined]
    viewer.Render()
    return viewer


def bench_study(volume: Volume, seg: Segmentation) -> dict[str, list[float]]:
    """Scroll once through every slice of the study, first to last, after one warm-up pass."""
    nz = volume.geometry.shape[0]
    out: dict[str, list[float]] = {}
    for name, overlay in (("vtkImageViewer2, no overlay", None),
                          ("vtkImageViewer2 + overlay actor", seg)):
        viewer = _stock_viewer(volume, overlay)
        window = viewer.GetRenderWindow()

        def stock(i: int, viewer: vtkImageViewer2 = viewer,
                  window: vtkRenderWindow = window) -> None:
            k = i % nz
            viewer.SetSlice(k)
            actor = getattr(viewer, "overlay_actor", None)
            if actor is not None:
                e = volume.geometry.size_ijk
                actor.SetDisplayExtent(0, e[0] - 1, 0, e[1] - 1, k, k)
            _frame(window)

        out[f"study: {name}"] = _times(stock, nz, warmup=nz)
        window.Finalize()

    view = SliceView(Orientation.AXIAL)
    window = _window(SLICE_SIZE)
    window.AddRenderer(view.renderer)
    view.set_volume(volume)
    view.set_window_level(400, 40)
    view.set_labels(seg)

    def scroll(i: int) -> None:
        world = view.step_world(1 if i % nz else -nz)  # back to the first slice, then on
        view.set_crosshair(world)
        _frame(window)

    out["study: SliceView + overlay (fill)"] = _times(scroll, nz, warmup=nz)
    window.Finalize()
    return out


def bench_3d(volume, n: int) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    scene = Scene3D()
    scene.set_preset(next(p for p in load_volume_presets() if p.name == "Bone"))
    scene.set_volume(volume)
    window = _window(VIEW3D_SIZE, multisamples=None)
    window.AddRenderer(scene.renderer)
    window.Render()

    def rotate(_i: int) -> None:
        scene.renderer.GetActiveCamera().Azimuth(5.0)
        scene.renderer.ResetCameraClippingRange()
        _frame(window)

    out: dict[str, list[float]] = {}
    scene.set_interactive(window, False)
    out["baseline: 3D frame, LOD off (still quality)"] = _times(rotate, max(5, n // 4), warmup=1)
    scene.set_interactive(window, True)
    out["3D frame while rotating, LOD on"] = _times(rotate, n)
    scene.set_interactive(window, False)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ct", nargs="?", default=str(DEFAULT_CT), help="CT folder or image file")
    p.add_argument("-n", type=int, default=100, help="frames per measurement")
    p.add_argument("--study-slices", type=int, default=300,
                   help="slices of the whole-study scroll (0: skip it)")
    p.add_argument("--no-3d", action="store_true", help="skip the 3D measurements")
    args = p.parse_args(argv)
    volume = load_volume(args.ct)
    seg = _labels(volume)
    labels = seg.labelmap
    probe = _window((64, 64))
    probe.Render()
    renderer_name = probe.ReportCapabilities().split("OpenGL renderer string:")[-1].split("\n")[0]
    print(f"CT {args.ct}: {volume.geometry.shape[::-1]} voxels; overlay voxels "
          f"{int((labels > 0).sum())}; OpenGL renderer:{renderer_name}")
    print(f"slice view {SLICE_SIZE[0]}x{SLICE_SIZE[1]} px, 3D view {VIEW3D_SIZE[0]}x"
          f"{VIEW3D_SIZE[1]} px, {args.n} frames each\n")
    rows = bench_slices(volume, seg, args.n)
    if args.study_slices:
        study = thin_sliced(volume, args.study_slices)
        rows.update(bench_study(study, _labels(study)))
    if not args.no_3d:
        rows.update(bench_3d(volume, args.n))
    base_slice = statistics.median(rows["baseline: vtkImageViewer2, no overlay"])
    base_study = statistics.median(rows.get("study: vtkImageViewer2, no overlay", [1.0]))
    base_3d = statistics.median(rows.get("baseline: 3D frame, LOD off (still quality)", [1.0]))
    print(f"{'measurement':46s} {'median ms':>10s} {'p95 ms':>9s} {'worst ms':>9s} "
          f"{'fps':>6s} {'x baseline':>11s}")
    for name, times in rows.items():
        base = base_3d if "3D" in name else base_study if name.startswith("study") \
            else base_slice
        med = statistics.median(times)
        p95 = float(np.percentile(times, 95))
        fps = 1000.0 * len(times) / sum(times)
        print(f"{name:46s} {med:10.1f} {p95:9.1f} {max(times):9.1f} {fps:6.1f} "
              f"{med / base:11.2f}")
    print("\nfps: frames over the summed frame times. 'study' rows: one pass over all "
          f"{args.study_slices} slices of a 512 x 512 x {args.study_slices} study; their "
          "baseline is vtkImageViewer2 without overlay on that study.")
    print("goals: slice change with overlay <= 16 ms median, <= 33 ms p95; "
          "3D frame while rotating <= 100 ms median")
    return 0


if __name__ == "__main__":
    sys.exit(main())
