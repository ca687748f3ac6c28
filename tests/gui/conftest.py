"""Synthetic studies with markers at known patient positions, and a window to show them."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.segmentation import Segment, Segmentation
from medseg_gui.core.volume import StudyInfo, Volume

pytestmark = pytest.mark.gui

# LPS centres of markers 12 mm from the middle towards the patient's left, front and head.
LEFT, ANTERIOR, SUPERIOR = (12.0, 0.0, 0.0), (0.0, -12.0, 0.0), (0.0, 0.0, 12.0)

# Direction matrices (columns = i, j, k in LPS) and spacings the views must all handle.
GRIDS = {
    "lps-iso": ((1, 0, 0, 0, 1, 0, 0, 0, 1), (1.0, 1.0, 1.0)),
    "flipped-xy": ((-1, 0, 0, 0, -1, 0, 0, 0, 1), (1.0, 1.0, 1.0)),
    "ras-thick": ((-1, 0, 0, 0, -1, 0, 0, 0, -1), (0.8, 0.8, 2.5)),
    # A sagittal acquisition: i runs posterior, j inferior, k left; anisotropic voxels.
    "sagittal-acq": ((0, 0, 1, 1, 0, 0, 0, -1, 0), (0.7, 0.9, 2.0)),
}


def grid(name: str, half_mm: float = 20.0) -> Geometry:
    """A grid centred on LPS (0, 0, 0) spanning about ``+-half_mm`` on every axis."""
    direction, spacing = GRIDS[name]
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    n = [int(2 * half_mm / s) + 1 for s in spacing]
    centre_ijk = (np.asarray(n) - 1) / 2
    origin = -(d * np.asarray(spacing)) @ centre_ijk
    return Geometry(shape=(n[2], n[1], n[0]), spacing=spacing, origin=origin,
                    direction=tuple(float(v) for v in d.ravel()))


def marker_mask(geometry: Geometry, centre: tuple[float, float, float],
                half: float = 5.0) -> np.ndarray:
    """Voxels (``[k, j, i]``) whose centre lies in a cube of ``+-half`` mm around ``centre``."""
    k, j, i = np.meshgrid(*(np.arange(n) for n in geometry.shape), indexing="ij")
    world = geometry.index_to_world(np.stack([i, j, k], axis=-1))
    return np.all(np.abs(world - np.asarray(centre)) <= half, axis=-1)


def marker_volume(name: str, centre: tuple[float, float, float]) -> Volume:
    """Air-like background (-1000) with a bright (1000) cube at ``centre``."""
    g = grid(name)
    array = np.full(g.shape, -1000, dtype=np.int16)
    array[marker_mask(g, centre)] = 1000
    return Volume(array, g, info=StudyInfo(modality="CT", patient_name="SYNTHETIC"))


def marker_segmentation(volume: Volume, centre: tuple[float, float, float]) -> Segmentation:
    labels = marker_mask(volume.geometry, centre).astype(np.uint8)
    return Segmentation(labels, volume.geometry, [Segment(1, "marker", color=(255, 0, 0))])


def white(rgb: np.ndarray) -> np.ndarray:
    """Pixels of the bright marker (grey-white; text and crosshair are coloured)."""
    return np.asarray(rgb.min(axis=-1) > 200)


def red(rgb: np.ndarray) -> np.ndarray:
    return np.asarray((rgb[..., 0] > 200) & (rgb[..., 1] < 60) & (rgb[..., 2] < 60))


def centroid(mask: np.ndarray) -> tuple[float, float]:
    """``(x, y)`` of a mask in image pixels, y downwards; fails when the mask is empty."""
    ys, xs = np.nonzero(mask)
    assert xs.size > 20, f"marker not visible ({xs.size} pixels)"
    return float(xs.mean()), float(ys.mean())


@pytest.fixture
def window(qtbot) -> Iterator[object]:  # type: ignore[no-untyped-def]
    from medseg_gui.ui.main_window import MainWindow

    w = MainWindow(dialogs=False)
    qtbot.addWidget(w)
    w.resize(900, 800)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.close()
