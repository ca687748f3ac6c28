"""NIfTI/NRRD/MHA: exact round trips, and LPS/RAS handled right in both directions."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.volume import Volume
from medseg_gui.io.errors import LoadError
from medseg_gui.io.imagefile import read_image, write_image
from medseg_gui.io.loader import load_volume
from medseg_gui.resources import DEMO_MASK, DEMO_STUDY

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_round_trip_is_exact(suffix: str, tmp_path: Path) -> None:
    ct = load_volume(DEMO_STUDY)
    out = write_image(ct, tmp_path / f"ct{suffix}")
    back = read_image(out)
    np.testing.assert_array_equal(back.array, ct.array)
    assert back.array.dtype == ct.array.dtype
    # NIfTI keeps the affine in float32: exact to float32 precision (well under 1e-3 mm).
    assert back.geometry.same_grid(ct.geometry, tol=1e-3)


def test_oblique_round_trip(tmp_path: Path) -> None:
    c, s = np.cos(0.3), np.sin(0.3)
    direction = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]) @ np.diag([-1, 1, 1])
    geom = Geometry((5, 6, 7), (0.8, 1.1, 2.5), (10.0, -20.0, 30.0), tuple(direction.ravel()))
    vol = Volume(np.random.default_rng(1).integers(-1000, 2000, geom.shape, dtype=np.int16), geom)
    for suffix in (".nii.gz", ".nrrd", ".mha"):
        back = read_image(write_image(vol, tmp_path / f"obl{suffix}"))
        np.testing.assert_array_equal(back.array, vol.array)
        assert back.geometry.same_grid(geom, tol=1e-4), suffix


def test_nifti_read_is_lps(shared_data: Path) -> None:
    # nibabel (an independent reader) gives the RAS affine of the same voxels.
    path = shared_data / "ibsi_sts" / "nifti" / "STS_001" / "CT_image.nii.gz"
    ours = read_image(path)
    img = nib.load(path)
    # nibabel indexes (i, j, k); ours is [k, j, i].
    np.testing.assert_array_equal(np.asarray(img.dataobj).transpose(2, 1, 0), ours.array)
    np.testing.assert_allclose(LPS_TO_RAS @ ours.geometry.affine, img.affine, atol=1e-4)


def test_nifti_write_is_ras(tmp_path: Path) -> None:
    ct = load_volume(DEMO_STUDY)
    out = write_image(ct, tmp_path / "ct.nii.gz")
    img = nib.load(out)
    np.testing.assert_allclose(img.affine, LPS_TO_RAS @ ct.geometry.affine, atol=1e-4)
    # The patient's left (+x LPS) is -x in RAS: a voxel's world x flips sign.
    world_lps = ct.index_to_world([10, 20, 30])
    world_ras = img.affine @ np.array([10, 20, 30, 1.0])
    np.testing.assert_allclose(world_ras[:3], world_lps * [-1, -1, 1], atol=1e-3)


def test_dicom_and_its_nifti_agree(shared_data: Path) -> None:
    # The IBSI's own NIfTI export of STS_001 sits on the same world grid as its DICOM.
    dcm = load_volume(shared_data / "ibsi_sts" / "dicom" / "STS_001" / "CT" / "image")
    nii = read_image(shared_data / "ibsi_sts" / "nifti" / "STS_001" / "CT_image.nii.gz")
    assert dcm.geometry.same_grid(nii.geometry, tol=1e-3)
    np.testing.assert_allclose(nii.array, dcm.array, atol=0.5)


def test_corrupt_and_unsupported_files(tmp_path: Path) -> None:
    truncated = tmp_path / "broken.nii.gz"
    truncated.write_bytes(DEMO_MASK.read_bytes()[:400])
    with pytest.raises(LoadError, match=r"broken\.nii\.gz"):
        load_volume(truncated)
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(gzip.compress(b"this is not a nifti header" * 20))
    with pytest.raises(LoadError, match="not a readable"):
        load_volume(garbage)
    with pytest.raises(LoadError, match="unsupported output format"):
        write_image(read_image(DEMO_MASK), tmp_path / "out.png")


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    vol = read_image(DEMO_MASK)
    write_image(vol, tmp_path / "m.nrrd")
    write_image(vol, tmp_path / "m.nrrd")
    assert [p.name for p in tmp_path.iterdir()] == ["m.nrrd"]
