"""Pixel checks: radiological orientation for any direction matrix, overlay on the right voxels."""

from __future__ import annotations

import numpy as np
import pytest

from medseg_gui.rendering.slicing import Orientation
from tests.gui.conftest import (
    ANTERIOR,
    GRIDS,
    LEFT,
    SUPERIOR,
    centroid,
    marker_segmentation,
    marker_volume,
    red,
    white,
)

pytestmark = pytest.mark.gui

# (view, marker, expected screen half): the radiological convention.
CASES = [
    (Orientation.AXIAL, LEFT, "right"),
    (Orientation.AXIAL, ANTERIOR, "top"),
    (Orientation.CORONAL, LEFT, "right"),
    (Orientation.CORONAL, SUPERIOR, "top"),
    (Orientation.SAGITTAL, ANTERIOR, "left"),
    (Orientation.SAGITTAL, SUPERIOR, "top"),
]


def shown(window, orientation: Orientation, centre) -> np.ndarray:  # type: ignore[no-untyped-def]
    window.set_crosshair(centre)
    return window.views[orientation].capture()


@pytest.mark.parametrize("grid_name", list(GRIDS))
@pytest.mark.parametrize(("orientation", "centre", "half"), CASES)
def test_marker_lands_on_radiological_side(window, grid_name, orientation, centre, half):  # type: ignore[no-untyped-def]
    window.set_volume(marker_volume(grid_name, centre))
    rgb = shown(window, orientation, centre)
    h, w, _ = rgb.shape
    x, y = centroid(white(rgb))
    expected = {"right": x > 0.6 * w, "left": x < 0.4 * w, "top": y < 0.4 * h}[half]
    assert expected, f"{orientation} marker at ({x:.0f}, {y:.0f}) in {w}x{h}, expected {half}"


@pytest.mark.parametrize("grid_name", list(GRIDS))
def test_marker_is_square_on_screen(window, grid_name):  # type: ignore[no-untyped-def]
    """A 10 mm cube looks square in every view, whatever the voxel spacing."""
    window.set_volume(marker_volume(grid_name, LEFT))
    for orientation in Orientation:
        ys, xs = np.nonzero(white(shown(window, orientation, LEFT)))
        width, height = np.ptp(xs) + 1, np.ptp(ys) + 1
        assert abs(width - height) <= 0.25 * max(width, height), (orientation, width, height)


@pytest.mark.parametrize("grid_name", list(GRIDS))
def test_overlay_covers_the_marker(window, grid_name):  # type: ignore[no-untyped-def]
    volume = marker_volume(grid_name, LEFT)
    window.set_volume(volume)
    for orientation in Orientation:
        marker = white(shown(window, orientation, LEFT))
        window.set_segmentation(marker_segmentation(volume, LEFT))
        for widget in window.views.values():
            widget.view.set_labels(window.segmentation, opacity=1.0)
        label = red(shown(window, orientation, LEFT))
        window.set_segmentation(None)
        iou = (marker & label).sum() / max(1, (marker | label).sum())
        assert iou > 0.8, f"{orientation}: overlay/marker IoU {iou:.2f}"
        (mx, my), (lx, ly) = centroid(marker), centroid(label)
        assert abs(mx - lx) < 2 and abs(my - ly) < 2


@pytest.mark.parametrize("grid_name", list(GRIDS))
def test_resliced_labels_equal_resliced_marker(window, grid_name):  # type: ignore[no-untyped-def]
    """Before display, the label slice holds label 1 on exactly the marker's voxels."""
    volume = marker_volume(grid_name, LEFT)
    window.set_volume(volume)
    window.set_segmentation(marker_segmentation(volume, LEFT))
    window.set_crosshair(LEFT)
    for widget in window.views.values():
        view = widget.view
        image = view._image_source.plane(view.layout, view.slice_index)
        labels = view._label_source.plane(view.layout, view.slice_index)
        assert labels.max() == 1
        np.testing.assert_array_equal(labels == 1, image > 0)
