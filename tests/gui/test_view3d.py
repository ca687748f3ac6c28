"""The 3D view: volume rendering of a real CT, surfaces built in the background, placed in
LPS so that the anterior view shows the patient's left on the screen's right."""

from __future__ import annotations

import numpy as np
import pytest

from medseg_gui.core.segmentation import Segment, Segmentation
from medseg_gui.rendering.surfaces import build_surfaces
from medseg_gui.rendering.volume_render import load_volume_presets
from medseg_gui.ui.view3d import View3DPanel
from tests.gui.conftest import GRIDS, LEFT, SUPERIOR, marker_segmentation, marker_volume

pytestmark = pytest.mark.gui


def _panel(qtbot) -> View3DPanel:  # type: ignore[no-untyped-def]
    panel = View3DPanel()
    qtbot.addWidget(panel)
    panel.resize(400, 360)
    panel.show()
    qtbot.waitExposed(panel)
    return panel


def _content(rgb: np.ndarray) -> np.ndarray:
    """Pixels brighter than the dark gradient background (max channel over 90)."""
    return np.asarray(rgb.max(axis=-1) > 90)


def test_real_ct_volume_renders(window, qtbot, shared_data):  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(window.studyLoaded, timeout=60000):
        window.open_path(shared_data / "crlm_unlabeled" / "CRLM-CT-1004" / "image")
    rgb = window.view3d.vtk.capture()
    assert rgb.shape[0] > 100 and _content(rgb).mean() > 0.02  # bone shows
    window.view3d.set_preset("Soft tissue")
    soft = _content(window.view3d.vtk.capture()).mean()
    assert soft > 0.1  # the skin surface of the abdomen fills much more of the view
    window.view3d.volume_check.setChecked(False)
    assert _content(window.view3d.vtk.capture()).mean() < 0.01


@pytest.mark.parametrize("grid_name", list(GRIDS))
def test_volume_and_surface_are_placed_in_lps(qtbot, grid_name):  # type: ignore[no-untyped-def]
    volume = marker_volume(grid_name, LEFT)
    panel = _panel(qtbot)
    panel.set_volume(volume)
    rgb = panel.vtk.capture()
    w = rgb.shape[1]
    bright = _content(rgb)
    ys, xs = np.nonzero(bright)
    assert xs.size > 50
    assert xs.mean() > w / 2 + 10  # patient's left on the screen's right (anterior view)

    panel.volume_check.setChecked(False)
    with qtbot.waitSignal(panel.surfacesBuilt, timeout=20000) as blocker:
        panel.set_segmentation(marker_segmentation(volume, LEFT))
    assert blocker.args == [1]
    rgb = panel.vtk.capture()
    red = (rgb[..., 0] > 120) & (rgb[..., 1] < 60) & (rgb[..., 2] < 60)
    ys2, xs2 = np.nonzero(red)
    assert xs2.size > 50
    assert abs(xs2.mean() - xs.mean()) < 8 and abs(ys2.mean() - ys.mean()) < 8


def test_superior_is_up(qtbot):  # type: ignore[no-untyped-def]
    volume = marker_volume("sagittal-acq", SUPERIOR)
    panel = _panel(qtbot)
    panel.set_volume(volume)
    rgb = panel.vtk.capture()
    ys = np.nonzero(_content(rgb))[0]
    assert ys.size > 50 and ys.mean() < rgb.shape[0] / 2 - 10  # row 0 is the top


def test_surfaces_rebuild_debounced_after_edits(qtbot):  # type: ignore[no-untyped-def]
    volume = marker_volume("lps-iso", LEFT)
    seg = marker_segmentation(volume, LEFT)
    panel = _panel(qtbot)
    panel.set_volume(volume)
    built: list[int] = []
    panel.surfacesBuilt.connect(built.append)
    panel.set_segmentation(seg)
    qtbot.waitUntil(lambda: built == [1], timeout=20000)
    # An "edit": a second segment, announced many times in a burst -> one rebuild.
    seg.labelmap[5:9, 5:9, 5:9] = 2
    seg.segments.append(Segment(2, "second", color=(0, 255, 0)))
    for _ in range(10):
        panel.segmentation_changed()
    qtbot.waitUntil(lambda: len(built) >= 2 and not panel.building, timeout=20000)
    qtbot.wait(600)
    assert built == [1, 2]
    assert len(panel.scene.surface_actors) == 2
    panel.set_segmentation(None)
    assert panel.scene.surface_actors == []


def test_surfaces_are_smooth_and_closed() -> None:
    volume = marker_volume("ras-thick", LEFT)
    seg = marker_segmentation(volume, LEFT)
    [surface] = build_surfaces(seg.labelmap, seg.geometry, seg.segments)
    from vtkmodules.vtkFiltersCore import vtkFeatureEdges

    edges = vtkFeatureEdges()
    edges.SetInputData(surface.polydata)
    edges.BoundaryEdgesOn()
    edges.FeatureEdgesOff()
    edges.NonManifoldEdgesOff()
    edges.ManifoldEdgesOff()
    edges.Update()
    assert edges.GetOutput().GetNumberOfCells() == 0  # watertight
    assert surface.n_triangles > 100
    empty = Segmentation(np.zeros_like(seg.labelmap), seg.geometry, seg.segments)
    assert build_surfaces(empty.labelmap, empty.geometry, empty.segments) == []


def test_presets_are_data() -> None:
    names = [p.name for p in load_volume_presets()]
    assert {"Bone", "Soft tissue", "Lung"} <= set(names)


def test_exported_stl_is_the_surface_the_view_shows(qtbot, shared_data, tmp_path):  # type: ignore[no-untyped-def]
    """A real sarcoma mask: the triangles the 3D view draws are the STL file's, to float32."""
    from medseg_gui.io.label_nifti import read_label_nifti
    from medseg_gui.io.loader import load_volume
    from medseg_gui.io.surfaces import export_surfaces, read_stl
    from medseg_gui.rendering.surfaces import polydata_triangles

    case = shared_data / "ibsi_sts" / "nifti" / "STS_008"
    volume = load_volume(case / "CT_image.nii.gz")
    seg = read_label_nifti(case / "CT_mask.nii.gz")
    panel = _panel(qtbot)
    panel.set_volume(volume)
    with qtbot.waitSignal(panel.surfacesBuilt, timeout=20000):
        panel.set_segmentation(seg)
    shown = polydata_triangles(panel.scene.surface_actors[0].GetMapper().GetInput())
    (stl,) = export_surfaces(seg, tmp_path / "stl", "stl")
    written, _normals = read_stl(stl)
    assert written.shape == shown.shape and len(shown) > 1000
    assert np.allclose(written, shown, atol=1e-4, rtol=0)  # float32 of LPS mm
