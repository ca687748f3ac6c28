"""A slice view's pixels: numpy planes equal VTK's reslice, grey equals VTK's window ramp, and
the tiles a layer skips change no pixel on screen."""

from __future__ import annotations

import numpy as np
import pytest
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkImagingCore import vtkImageMapToColors
from vtkmodules.vtkRenderingCore import vtkRenderer, vtkRenderWindow

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.volume import StudyInfo, Volume
from medseg_gui.rendering import slice_layer
from medseg_gui.rendering.imagedata import capture_window
from medseg_gui.rendering.slice_layer import SliceLayer
from medseg_gui.rendering.slice_source import PlaneSampler, apply_table, code_table, map_grey
from medseg_gui.rendering.slice_view import SliceView
from medseg_gui.rendering.slicing import Orientation, SliceLayout, plane_of
from tests.gui.conftest import GRIDS, LEFT, centroid, grid, marker_mask, white

pytestmark = pytest.mark.gui


@pytest.mark.parametrize("grid_name", list(GRIDS))
@pytest.mark.parametrize("linear", [True, False])
def test_numpy_plane_equals_vtk_reslice(grid_name: str, linear: bool) -> None:
    """Where the grid is axis-aligned, the array's plane is exactly what the reslice returns."""
    g = grid(grid_name)
    array = np.random.default_rng(3).integers(-1000, 2000, g.shape).astype(np.int16)
    sampler = PlaneSampler(linear=linear)
    sampler.set_data(array, g, background=-1024)
    for orientation in Orientation:
        layout = SliceLayout.of(g, orientation)
        for index in (0, layout.n_slices // 3, layout.n_slices - 1):
            plane = plane_of(array, layout, g, index)
            assert plane is not None
            np.testing.assert_array_equal(plane, sampler._resliced(layout, index))


def test_a_grid_of_other_extent_is_padded_like_the_reslice() -> None:
    """A label map on part of the study's lattice: outside it the plane holds the background."""
    g = grid("ras-thick")
    part = g.crop((3, 5, 2), (30, 40, 12))
    labels = np.random.default_rng(4).integers(0, 3, part.shape).astype(np.uint8)
    sampler = PlaneSampler(linear=False)
    sampler.set_data(labels, part)
    for orientation in Orientation:
        layout = SliceLayout.of(g, orientation)
        for index in range(0, layout.n_slices, 3):
            plane = plane_of(labels, layout, part, index)
            assert plane is not None
            np.testing.assert_array_equal(plane, sampler._resliced(layout, index))


def test_an_oblique_grid_is_resliced_and_stays_radiological() -> None:
    """A grid turned 30 degrees in the axial plane has no numpy plane; the view still shows a
    marker on the patient's left on the screen's right."""
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    d = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    n, spacing = 41, np.array([1.0, 1.0, 1.0])
    origin = -(d * spacing) @ np.full(3, (n - 1) / 2)
    g = Geometry(shape=(n, n, n), spacing=tuple(spacing), origin=tuple(origin),
                 direction=tuple(d.ravel()))
    array = np.full(g.shape, -1000, dtype=np.int16)
    array[marker_mask(g, LEFT)] = 1000
    layout = SliceLayout.of(g, Orientation.AXIAL)
    assert plane_of(array, layout, g, layout.n_slices // 2) is None
    view = SliceView(Orientation.AXIAL)
    window = _offscreen(view, (300, 300))
    view.set_volume(Volume(array, g, info=StudyInfo(modality="CT")))
    view.set_crosshair(LEFT)
    rgb = capture_window(window)
    x, _ = centroid(white(rgb))
    assert x > 0.6 * rgb.shape[1]
    window.Finalize()


def test_grey_is_vtk_window_ramp(shared_data) -> None:  # type: ignore[no-untyped-def]
    """The code table gives the grey vtkImageMapToColors gives (vtkImageActor's mapping)."""
    from medseg_gui.io.loader import load_volume

    ct = load_volume(shared_data / "crlm_unlabeled" / "CRLM-CT-1006" / "image")
    view = SliceView(Orientation.AXIAL)
    for width, level in ((400, 40), (1500, -600), (80.5, 33.3)):
        view.set_window_level(width, level)
        plane = ct.array[20]
        for values in (plane, plane.astype(np.float32) + 0.25):
            image = vtkImageData()
            image.SetDimensions(plane.shape[1], plane.shape[0], 1)
            image.GetPointData().SetScalars(numpy_to_vtk(values.ravel()))
            stock = vtkImageMapToColors()
            stock.SetInputData(image)
            stock.SetLookupTable(view._grey)
            stock.SetOutputFormatToLuminance()
            stock.Update()
            expected = vtk_to_numpy(stock.GetOutput().GetPointData().GetScalars())
            table = code_table(view._grey, values.dtype)
            grey = apply_table(table, values) if table is not None else map_grey(view._grey,
                                                                                 values)
            np.testing.assert_array_equal(grey.ravel(), expected.ravel())


def test_kept_tiles_are_the_tiles_near_filled_texels() -> None:
    """The fast tile finder agrees with the plain rule: a tile is kept when a filled texel lies
    in it or within one texel of it (8-neighbourhood)."""
    tile = slice_layer.TILE
    rng = np.random.default_rng(5)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 5 * tile, 2))
        filled = rng.random((h, w)) < rng.choice([0.0005, 0.005, 0.05])
        grown = filled.copy()
        grown[1:] |= filled[:-1]
        grown[:-1] |= filled[1:]
        ring = grown.copy()
        ring[:, 1:] |= grown[:, :-1]
        ring[:, :-1] |= grown[:, 1:]
        th, tw = -(-h // tile), -(-w // tile)
        padded = np.zeros((th * tile, tw * tile), dtype=bool)
        padded[:h, :w] = ring
        expected = padded.reshape(th, tile, tw, tile).any(axis=(1, 3))
        covered = np.zeros((th, tw), dtype=int)
        for c0, c1, r0, r1 in slice_layer._kept_quads(filled):
            assert c1 <= w and r1 <= h
            covered[r0 // tile:(r1 - 1) // tile + 1, c0 // tile:(c1 - 1) // tile + 1] += 1
        np.testing.assert_array_equal(covered, expected.astype(int))  # each kept tile once


@pytest.mark.parametrize("size", [(700, 700), (300, 410)])
def test_skipped_tiles_change_no_pixel(monkeypatch, size) -> None:  # type: ignore[no-untyped-def]
    """The same CT-like image drawn with empty tiles skipped and as one quad: the frames agree to
    one grey level (rounding of the texture coordinates), magnified and minified."""
    rng = np.random.default_rng(6)
    yy, xx = np.mgrid[:512, :512]
    body = (yy - 250) ** 2 / 200**2 + (xx - 256) ** 2 / 240**2 < 1
    grey = np.where(body, rng.integers(1, 255, (512, 512)), 0).astype(np.uint8)
    grey[100:104, 30:34] = 200  # a speck in the air

    def frame(tile: int) -> np.ndarray:
        monkeypatch.setattr(slice_layer, "TILE", tile)
        renderer = vtkRenderer()
        layer = SliceLayer(0.0, linear=True)
        layer.set_grid((0.0, 400.0, 0.0, 400.0), (512, 512))
        layer.show(grey)
        renderer.AddViewProp(layer.actor)
        renderer.GetActiveCamera().ParallelProjectionOn()
        renderer.ResetCamera(0.0, 400.0, 0.0, 400.0, 0.0, 0.0)
        window = _offscreen(renderer, size)
        rgb = capture_window(window)
        window.Finalize()
        return rgb

    skipped, whole = frame(16), frame(1024)
    assert skipped.any()
    assert np.abs(skipped.astype(int) - whole.astype(int)).max() <= 1


def _offscreen(view: SliceView | vtkRenderer, size: tuple[int, int]) -> vtkRenderWindow:
    window = vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetMultiSamples(0)
    window.SetSize(*size)
    window.AddRenderer(view.renderer if isinstance(view, SliceView) else view)
    return window
