"""The Qt-free rendering layer: geometry-preserving conversion and slice layouts."""

from __future__ import annotations

import numpy as np
import pytest

from medseg_gui.rendering import (
    Orientation,
    SliceLayout,
    edge_letters,
    from_vtk_image,
    load_presets,
    probe,
    to_vtk_image,
)
from tests.gui.conftest import GRIDS, LEFT, grid, marker_volume

pytestmark = pytest.mark.gui


@pytest.mark.parametrize("grid_name", list(GRIDS))
def test_vtk_image_round_trip_keeps_geometry(grid_name):  # type: ignore[no-untyped-def]
    volume = marker_volume(grid_name, LEFT)
    image = to_vtk_image(volume.array, volume.geometry)
    # VTK's own index -> world mapping agrees with the core's (LPS mm).
    world = [0.0, 0.0, 0.0]
    image.TransformContinuousIndexToPhysicalPoint([1, 2, 3], world)
    np.testing.assert_allclose(world, volume.geometry.index_to_world([1, 2, 3]), atol=1e-9)
    array, geometry = from_vtk_image(image)
    np.testing.assert_array_equal(array, volume.array)
    assert geometry.same_grid(volume.geometry)


def test_edge_letters_are_radiological():
    assert edge_letters(Orientation.AXIAL) == {"left": "R", "right": "L", "top": "A",
                                               "bottom": "P"}
    assert edge_letters(Orientation.CORONAL) == {"left": "R", "right": "L", "top": "S",
                                                 "bottom": "I"}
    assert edge_letters(Orientation.SAGITTAL) == {"left": "A", "right": "P", "top": "S",
                                                  "bottom": "I"}


def test_layout_keeps_true_voxel_sizes():
    g = grid("ras-thick")
    coronal = SliceLayout.of(g, Orientation.CORONAL)
    assert coronal.spacing == (0.8, 2.5) and coronal.dz == 0.8
    axial = SliceLayout.of(g, Orientation.AXIAL)
    assert axial.n_slices == g.size_ijk[2] and axial.dz == 2.5


@pytest.mark.parametrize("grid_name", list(GRIDS))
def test_reslice_matrix_hits_voxel_centres(grid_name):  # type: ignore[no-untyped-def]
    g = grid(grid_name)
    for orientation in Orientation:
        layout = SliceLayout.of(g, orientation)
        m = layout.reslice_matrix(g, 3)
        x0, y0 = layout.origin
        q = m @ np.array([x0 + 2 * layout.spacing[0], y0 + layout.spacing[1], 0.0, 1.0])
        ijk = q[:3] / np.asarray(g.spacing)
        np.testing.assert_allclose(ijk, np.rint(ijk), atol=1e-6)


def test_probe_and_presets():
    volume = marker_volume("flipped-xy", LEFT)
    ijk, value = probe(volume.array, volume.geometry, LEFT)
    assert value == 1000 and ijk is not None
    assert probe(volume.array, volume.geometry, (99.0, 0.0, 0.0)) == (None, None)
    assert {p.name for p in load_presets()} >= {"Lung", "Bone", "Brain", "Liver"}


def _offscreen(view):  # type: ignore[no-untyped-def]
    from vtkmodules.vtkRenderingCore import vtkRenderWindow

    window = vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(300, 300)
    window.AddRenderer(view.renderer)
    return window


def test_overlay_quad_covers_only_the_labelled_box():  # type: ignore[no-untyped-def]
    """Transparent overlay pixels are not shaded: the label quad spans the marker's box."""
    from medseg_gui.rendering.slice_view import SliceView
    from tests.gui.conftest import marker_segmentation

    volume = marker_volume("ras-thick", LEFT)
    view = SliceView(Orientation.AXIAL)
    window = _offscreen(view)
    view.set_volume(volume)
    view.set_labels(marker_segmentation(volume, LEFT))
    view.set_crosshair(LEFT)
    window.Render()
    x0, x1, y0, y1 = view._labels.bounds()
    x, y, _ = view.layout.world_to_view(LEFT)
    # The 10 mm cube, to the voxel: pixel edges on a 0.8 mm grid.
    assert abs((x0 + x1) / 2 - x) < 0.9 and abs((y0 + y1) / 2 - y) < 0.9
    assert 9.0 <= x1 - x0 <= 11.7 and 9.0 <= y1 - y0 <= 11.7
    view.set_crosshair(view.step_world(-view.slice_index))  # a slice without labels
    window.Render()
    assert not view._labels.shown and not view._labels.actor.GetVisibility()  # nothing drawn
    window.Finalize()


def test_a_plane_that_did_not_move_is_not_resliced():  # type: ignore[no-untyped-def]
    """Scrolling one view moves only the crosshair lines of the others."""
    from medseg_gui.rendering.slice_view import SliceView

    volume = marker_volume("lps-iso", LEFT)
    coronal = SliceView(Orientation.CORONAL)
    window = _offscreen(coronal)
    coronal.set_volume(volume)
    window.Render()
    before = coronal._image.uploads
    centre = np.asarray(coronal._crosshair)
    coronal.set_crosshair(centre + np.array([0.0, 0.0, 5.0]))  # an axial scroll: same coronal plane
    window.Render()
    assert coronal._image.uploads == before
    coronal.set_crosshair(centre + np.array([0.0, 5.0, 0.0]))  # the coronal plane moves
    window.Render()
    assert coronal._image.uploads == before + 1
    window.Finalize()
