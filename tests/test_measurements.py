"""Segment measurements on the shared sarcoma masks, checked against brute force and numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.measurements import (
    PERPENDICULAR_TOLERANCE_DEG,
    boundary_points,
    measure_all,
    measure_segment,
)
from medseg_gui.core.progress import Cancelled
from medseg_gui.core.segmentation import Segment, Segmentation
from medseg_gui.core.volume import Volume
from medseg_gui.io.label_nifti import read_label_nifti
from medseg_gui.io.loader import load_volume
from medseg_gui.io.surfaces import segment_mesh

# The smallest shared masks: brute force over every pair of boundary points stays ~1 s.
CASES = ["STS_008", "STS_035", "STS_002"]


def _case(shared_data: Path, case: str) -> tuple[Volume, Segmentation]:
    folder = shared_data / "ibsi_sts/nifti" / case
    ct = load_volume(folder / "CT_image.nii.gz")
    gt = read_label_nifti(folder / "CT_mask.nii.gz")
    return ct, Segmentation(gt.labelmap, ct.geometry, [Segment(1, "GTV")])


def _world(geometry: Geometry, kji: np.ndarray) -> np.ndarray:
    return geometry.index_to_world(kji[:, ::-1])


def test_one_voxel_and_a_bar() -> None:
    g = Geometry((3, 8, 12), (0.5, 2.0, 3.0), (10.0, -5.0, 7.0))
    seg = Segmentation.empty(g, [Segment(1, "dot"), Segment(2, "bar")])
    seg.labelmap[1, 4, 2] = 1
    seg.labelmap[1, 2, 3:11] = 2  # 8 voxels of 0.5 mm along i
    dot, bar = measure_all(seg)
    assert dot.longest_diameter_mm == pytest.approx(3.0)  # one voxel is one voxel across
    assert dot.recist is not None and dot.recist.long.length_mm == pytest.approx(2.0)
    assert dot.recist.short is not None and dot.recist.short.length_mm == pytest.approx(0.5)
    assert bar.recist is not None and bar.recist.k == 1
    # Edge centres, not corners: from the first voxel's top edge to the last one's bottom edge.
    assert bar.recist.long.length_mm == pytest.approx(np.hypot(7 * 0.5, 2.0))
    assert bar.volume_ml == pytest.approx(8 * 0.5 * 2 * 3 / 1000)
    assert bar.mean is None and bar.voxels == 8


@pytest.mark.parametrize("case", CASES)
def test_against_brute_force(shared_data: Path, case: str) -> None:
    ct, seg = _case(shared_data, case)
    mask = seg.mask(1)
    m = measure_segment(seg, 1, ct)
    assert m.voxels == int(mask.sum())
    assert m.volume_ml == pytest.approx(mask.sum() * np.prod(ct.geometry.spacing) / 1000)
    values = ct.array[mask].astype(np.float64)
    assert (m.mean, m.minimum, m.maximum) == pytest.approx(
        (values.mean(), values.min(), values.max()))

    # Boundary points are the vertices of the unsmoothed surface: both agree where the edge is.
    edge = _world(seg.geometry, boundary_points(mask))
    raw = segment_mesh(seg, 1, smoothing=False)
    assert np.allclose(np.unique(np.round(edge, 4), axis=0),
                       np.unique(np.round(raw.vertices, 4), axis=0))

    # 3D diameter: every pair of boundary points.
    assert m.diameter is not None
    assert m.diameter.length_mm == pytest.approx(pdist(edge).max(), abs=1e-6)
    assert np.linalg.norm(np.subtract(m.diameter.end, m.diameter.start)) == pytest.approx(
        m.diameter.length_mm)

    # RECIST long axis: every pair on every slice; short axis: every pair of that slice.
    assert m.recist is not None
    flat = boundary_points(mask, axes=(1, 2))
    per_slice = {int(k): _world(seg.geometry, flat[flat[:, 0] == k]) for k in
                 np.unique(flat[:, 0])}
    longest = {k: pdist(p).max() if len(p) > 1 else 0.0 for k, p in per_slice.items()}
    assert m.recist.long.length_mm == pytest.approx(max(longest.values()), abs=1e-6)
    assert longest[m.recist.k] == pytest.approx(m.recist.long.length_mm, abs=1e-6)
    points = per_slice[m.recist.k]
    diff = points[None, :, :] - points[:, None, :]
    u = np.subtract(m.recist.long.end, m.recist.long.start)
    u /= np.linalg.norm(u)
    length = squareform(pdist(points))
    perpendicular = np.abs(diff @ u) <= np.sin(np.radians(PERPENDICULAR_TOLERANCE_DEG)) * length
    assert m.recist.short is not None
    assert m.recist.short.length_mm == pytest.approx(length[perpendicular].max(), abs=1e-6)
    s = np.subtract(m.recist.short.end, m.recist.short.start)
    angle = np.degrees(np.arccos(abs(s @ u) / np.linalg.norm(s)))
    assert 90 - PERPENDICULAR_TOLERANCE_DEG <= angle <= 90
    for end in (m.recist.long.start, m.recist.long.end, m.recist.short.start,
                m.recist.short.end):
        assert np.min(np.linalg.norm(points - np.asarray(end), axis=1)) < 1e-6
        assert ct.geometry.world_to_index(end)[2] == pytest.approx(m.recist.k)
    assert m.longest_diameter_mm >= m.recist.long.length_mm >= m.recist.short.length_mm


def test_measure_all_refuses_another_grid_and_stops_when_cancelled(shared_data: Path) -> None:
    ct, seg = _case(shared_data, "STS_008")
    other = Segmentation.empty(ct.geometry.with_spacing((1.0, 1.0, 1.0)), [Segment(1, "x")])
    with pytest.raises(ValueError, match="grid"):
        measure_all(other, ct)
    with pytest.raises(Cancelled):
        measure_all(seg, ct, progress=lambda _f, _m: False)
    empty = Segmentation(np.zeros_like(seg.labelmap), seg.geometry, [Segment(1, "none")])
    (m,) = measure_all(empty, ct)
    assert (m.voxels, m.diameter, m.recist, m.mean) == (0, None, None, None)
