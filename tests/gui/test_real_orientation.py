"""Orientation on a real patient: the liver shows on the screen's left, the spleen on its right.

A radiologist reads axial and coronal images with the patient's right on the screen's left. The
TotalSegmentator example CT (real DICOM, JPEG 2000) comes with organ labels on its grid; the
liver is in the patient's right upper abdomen and the spleen in the left, so in a screenshot of
the running viewer the liver overlay must lie left of the spleen overlay, both in the expected
halves of the view.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg_gui.core.segmentation import Segment, Segmentation
from medseg_gui.io.imagefile import read_image
from medseg_gui.io.loader import load_volume
from medseg_gui.rendering.slicing import Orientation

pytestmark = pytest.mark.gui

# TotalSegmentator v2 label values in example_seg_dicom.nii.gz.
LIVER, SPLEEN = 5, 1


def _organs(shared_data: Path):  # type: ignore[no-untyped-def]
    ct = load_volume(shared_data / "totalseg_example" / "example_ct_dicom")
    labels = read_image(shared_data / "totalseg_example" / "example_seg_dicom.nii.gz")
    # The label file's grid is the CT's to within NIfTI's float32 header: resample by nearest
    # neighbour onto the CT's exact grid (a no-op in voxel terms, checked below).
    on_ct = labels.resample(ct.geometry, interpolation="nearest", default_value=0).array
    assert (on_ct == LIVER).sum() == (labels.array == LIVER).sum()
    lab = np.zeros(ct.shape, np.uint8)
    lab[on_ct == LIVER] = 1
    lab[on_ct == SPLEEN] = 2
    seg = Segmentation(lab, ct.geometry, [Segment(1, "Liver", (255, 0, 0)),
                                          Segment(2, "Spleen", (0, 0, 255))])
    centre = ct.index_to_world(np.argwhere(lab > 0).mean(axis=0)[::-1])
    return ct, seg, centre


@pytest.mark.parametrize("orientation", [Orientation.AXIAL, Orientation.CORONAL])
def test_liver_on_screen_left_spleen_on_screen_right(window, shared_data, orientation):  # type: ignore[no-untyped-def]
    ct, seg, centre = _organs(shared_data)
    window.set_volume(ct)
    assert window.set_segmentation(seg, force=True) is not False
    window.set_crosshair(centre)
    rgb = window.views[orientation].capture().astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    red = (r > g + 60) & (r > b + 60)
    blue = (b > r + 60) & (b > g + 60)
    assert red.sum() > 200 and blue.sum() > 50, (red.sum(), blue.sum())
    width = rgb.shape[1]
    liver_x = np.nonzero(red)[1].mean()
    spleen_x = np.nonzero(blue)[1].mean()
    assert liver_x < width / 2 < spleen_x, (liver_x, spleen_x, width)


def test_scale_bar_matches_world_millimetres(window, shared_data):  # type: ignore[no-untyped-def]
    ct, _, _ = _organs(shared_data)
    window.set_volume(ct)
    for zoom in (1.0, 2.5):
        widget = window.views[Orientation.AXIAL]
        view = widget.view
        view.zoom = zoom
        widget.capture()  # render: the bar is sized before each render
        bar = view.scale_bar
        # Two points bar.length_mm apart along the screen's x axis, through the slice centre.
        a = view.layout.view_to_world(np.array([0.0, 0.0, 0.0]))
        b = view.layout.view_to_world(np.array([bar.length_mm, 0.0, 0.0]))
        (ax, _), (bx, _) = view.world_to_display(a), view.world_to_display(b)
        line = bar.line.GetMapper().GetInput().GetPoints()
        bar_px = line.GetPoint(1)[0] - line.GetPoint(0)[0]
        assert abs(abs(bx - ax) - bar_px) < 1.0, (bx - ax, bar_px)
        assert bar_px <= widget.width() / 4 + 1
