"""Low-confidence regions on a real sarcoma: the smoothed mask's rim plus blobs placed by hand,
checked against a brute-force labelling of the whole volume and against the geometry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.volume import Volume
from medseg_gui.inference.confidence import UncertainRegion, uncertain_band, uncertain_regions
from medseg_gui.io.imagefile import read_image

# A 4 x 5 x 6 voxel block (i, j, k) of probability 0.5, far from the tumour.
BLOB_START_IJK, BLOB_SIZE_IJK = (10, 12, 3), (4, 5, 6)


@pytest.fixture(scope="module")
def mask(shared_data: Path) -> Volume:
    return read_image(shared_data / "ibsi_sts" / "nifti" / "STS_001" / "CT_mask.nii.gz")


def blob_slices(start: tuple[int, int, int], size: tuple[int, int, int]) -> tuple[slice, ...]:
    """``[k, j, i]`` slices of a block given by its ``(i, j, k)`` start and size."""
    return tuple(slice(a, a + n) for a, n in zip(start[::-1], size[::-1], strict=True))


@pytest.fixture(scope="module")
def probability(mask: Volume) -> np.ndarray:
    """The real mask smoothed (sigma 1.5 voxels: the 0.3-0.7 band is its border), a blob."""
    p = ndimage.gaussian_filter(mask.array.astype(np.float32), sigma=1.5)
    block = blob_slices(BLOB_START_IJK, BLOB_SIZE_IJK)
    assert p[block].max() < 0.01  # the blob sits where the tumour has no influence
    p[block] = 0.5
    return p.astype(np.float16)


def brute_force(probability: np.ndarray, geometry: Geometry) -> list[tuple[int, float, np.ndarray]]:
    """``(voxels, mean probability, LPS centroid)`` of every 26-connected band region, from
    the whole volume, without the band's bounding box or the bit-pattern comparison."""
    p = probability.astype(np.float64)
    band = (p >= np.float16(0.3)) & (p <= np.float16(0.7))
    labels, n = ndimage.label(band, structure=np.ones((3, 3, 3)))
    out = []
    for value in range(1, n + 1):
        kji = np.argwhere(labels == value)
        world = geometry.index_to_world(kji[:, ::-1]).mean(axis=0)
        out.append((len(kji), float(p[labels == value].mean()), world))
    return sorted(out, key=lambda r: -r[0])


def test_regions_match_brute_force_on_a_real_sarcoma(mask: Volume,
                                                     probability: np.ndarray) -> None:
    g = mask.geometry
    regions = uncertain_regions(probability, g, top=100, min_voxels=1)
    expected = brute_force(probability, g)
    assert len(regions) == len(expected) >= 2
    voxel_ml = float(np.prod(g.spacing)) / 1000
    for region, (voxels, mean_p, centroid) in zip(regions, expected, strict=True):
        assert region.voxels == voxels
        assert region.volume_ml == pytest.approx(voxels * voxel_ml)
        assert region.mean_probability == pytest.approx(mean_p, abs=1e-6)
        assert np.allclose(region.centroid_lps, centroid, atol=1e-6)
        assert 0.3 <= region.mean_probability <= 0.7
    # The largest is the tumour's rim: around the mask's centre, between its shrunk and grown
    # versions (the band of a sigma-1.5 blur lies within 3 voxels of the border).
    rim = regions[0]
    inside = mask.array > 0
    assert rim.voxels > 1000
    mask_centre = g.index_to_world(np.argwhere(inside)[:, ::-1].mean(axis=0))
    assert np.linalg.norm(np.subtract(rim.centroid_lps, mask_centre)) < 10.0
    band = uncertain_band(probability)
    band[blob_slices(BLOB_START_IJK, BLOB_SIZE_IJK)] = False
    near_border = ndimage.binary_dilation(inside, iterations=3) & ~ndimage.binary_erosion(
        inside, iterations=3)
    assert not np.any(band & ~near_border)


def test_the_placed_blob_has_its_known_size_place_and_box(mask: Volume,
                                                          probability: np.ndarray) -> None:
    g = mask.geometry
    regions = uncertain_regions(probability, g, top=100, min_voxels=1)
    n = int(np.prod(BLOB_SIZE_IJK))
    blob = next(r for r in regions if r.voxels == n and r.mean_probability == 0.5)
    assert blob.volume_ml == pytest.approx(n * np.prod(g.spacing) / 1000)
    centre_ijk = np.add(BLOB_START_IJK, (np.asarray(BLOB_SIZE_IJK) - 1) / 2)
    # LPS from the geometry's own definition: origin + direction @ (spacing * ijk).
    lps = np.asarray(g.origin) + g.direction_matrix @ (np.asarray(g.spacing) * centre_ijk)
    assert np.allclose(blob.centroid_lps, lps, atol=1e-6)
    assert blob.centroid_ijk == tuple(int(v) for v in np.rint(centre_ijk))
    assert blob.bbox_start_ijk == BLOB_START_IJK
    assert blob.bbox_stop_ijk == tuple(np.add(BLOB_START_IJK, BLOB_SIZE_IJK))


def test_centroids_follow_a_flipped_direction(mask: Volume, probability: np.ndarray) -> None:
    """The same voxels on a grid whose i and j axes run right and anterior (RAS-like)."""
    g = mask.geometry
    flipped = Geometry(g.shape, g.spacing, (200.0, 150.0, -881.3),
                       (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))
    regions = uncertain_regions(probability, flipped, top=100, min_voxels=1)
    assert [r.voxels for r in regions] == [r.voxels for r in uncertain_regions(
        probability, g, top=100, min_voxels=1)]
    blob = next(r for r in regions if r.voxels == int(np.prod(BLOB_SIZE_IJK)))
    centre_ijk = np.add(BLOB_START_IJK, (np.asarray(BLOB_SIZE_IJK) - 1) / 2)
    lps = np.array([200.0 - g.spacing[0] * centre_ijk[0], 150.0 - g.spacing[1] * centre_ijk[1],
                    -881.3 + g.spacing[2] * centre_ijk[2]])
    assert np.allclose(blob.centroid_lps, lps, atol=1e-6)


def test_top_min_voxels_and_connectivity(mask: Volume, probability: np.ndarray) -> None:
    g = mask.geometry
    p = probability.copy()
    p[40:42, 10:12, 170:172] = 0.45  # a 2x2x2 speck: 8 voxels
    # Two single voxels touching only at a corner: one region under 26-connectivity.
    p[30, 180, 20] = p[31, 181, 21] = 0.6
    everything = uncertain_regions(p, g, top=100, min_voxels=1)
    assert any(r.voxels == 8 and r.mean_probability == pytest.approx(0.45, abs=1e-3)
               for r in everything)
    assert any(r.voxels == 2 and r.bbox_start_ijk == (20, 180, 30) for r in everything)
    default = uncertain_regions(p, g)
    assert all(r.voxels >= 27 for r in default) and len(default) < len(everything)
    assert uncertain_regions(p, g, top=1) == everything[:1]
    assert uncertain_regions(np.zeros(g.shape, np.float16), g) == []
    with pytest.raises(ValueError, match="does not match"):
        uncertain_regions(p[1:], g)


def test_band_on_float16_bits_equals_numpy_for_every_half() -> None:
    every = np.arange(65536, dtype=np.uint16).view(np.float16)
    with np.errstate(invalid="ignore"):
        for low, high in ((0.3, 0.7), (0.0, 0.05), (0.5, 0.5), (0.0, 1.0)):
            expected = (every >= np.float16(low)) & (every <= np.float16(high))
            assert np.array_equal(uncertain_band(every, low, high), expected)
            assert np.array_equal(uncertain_band(every.astype(np.float32), np.float16(low),
                                                 np.float16(high)), expected)
    with pytest.raises(ValueError):
        uncertain_band(every, 0.7, 0.3)


def test_region_rows_survive_json(mask: Volume, probability: np.ndarray) -> None:
    regions = uncertain_regions(probability, mask.geometry)
    rows = json.loads(json.dumps([r.to_dict() for r in regions]))
    assert [UncertainRegion.from_dict(d) for d in rows] == regions
