"""DICOM series loading on the real data: geometry vs dcm2niix, voxels vs SimpleITK.

Every CT series under ../shared/data with two or more slices is checked: the world position of
every voxel centre must match what dcm2niix (an independent converter) writes, and every voxel
value must equal SimpleITK's ImageSeriesReader.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from medseg_gui.core.volume import geometry_of, make_reference
from medseg_gui.io.dicom_index import index_folder
from medseg_gui.io.dicom_series import load_series
from medseg_gui.io.errors import LoadError
from medseg_gui.io.loader import load_volume
from tests.conftest import SHARED_DATA


def _ct_series() -> list[tuple[str, list[Path]]]:
    if SHARED_DATA is None:
        return []
    index = index_folder(SHARED_DATA)
    out = []
    for _, _, se in index.all_series():
        if se.is_image and se.modality == "CT" and se.frames >= 2:
            name = str(se.files[0].parent.relative_to(SHARED_DATA))
            out.append((name, se.files))
    return sorted(out)


CT_SERIES = _ct_series()


def _dcm2niix(files: list[Path], tmp: Path) -> sitk.Image:
    src = tmp / "in"
    src.mkdir()
    for f in files:
        (src / f.name).symlink_to(f)
    out = tmp / "out"
    out.mkdir()
    subprocess.run(
        ["dcm2niix", "-z", "y", "-b", "n", "-f", "vol", "-o", str(out), str(src)],
        check=True, capture_output=True,
    )
    produced = sorted(out.glob("*.nii.gz"))
    assert len(produced) == 1, f"dcm2niix wrote {produced}"
    return sitk.ReadImage(str(produced[0]))


def _corners(geom_shape_ijk: tuple[int, int, int], index_to_world) -> np.ndarray:  # type: ignore[no-untyped-def]
    i, j, k = (s - 1 for s in geom_shape_ijk)
    pts = np.array([[a, b, c] for a in (0, i) for b in (0, j) for c in (0, k)], dtype=float)
    return np.asarray(sorted(map(tuple, np.round(index_to_world(pts), 2))))


@pytest.mark.parametrize("name,files", CT_SERIES, ids=[n for n, _ in CT_SERIES])
def test_series_matches_dcm2niix_and_simpleitk(name: str, files: list[Path], tmp_path: Path,
                                                shared_data: Path) -> None:
    volume = load_series(files)
    assert volume.warnings == ()
    ref = _dcm2niix(files, tmp_path)
    # The same voxel-centre box in world space (dcm2niix may store axes flipped or permuted).
    ref_geom = geometry_of(ref)
    ours = _corners(volume.geometry.size_ijk, volume.index_to_world)
    theirs = _corners(ref_geom.size_ijk, ref_geom.index_to_world)
    np.testing.assert_allclose(ours, theirs, atol=0.02)
    # Every voxel: the value dcm2niix has at our voxel's world position is our value.
    on_our_grid = sitk.Resample(ref, make_reference(volume.geometry), sitk.Transform(),
                                sitk.sitkNearestNeighbor, -9999)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(on_our_grid), volume.array)
    # Voxel values equal SimpleITK's series reader (HU after rescale).
    if len(files) > 1:
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(
            [str(f) for f in sorted(files, key=lambda f: _position_along_normal(f))]
        )
        itk = reader.Execute()
        np.testing.assert_array_equal(sitk.GetArrayFromImage(itk), volume.array)
        assert volume.geometry.same_grid(geometry_of(itk), tol=1e-3)


def _position_along_normal(path: Path) -> float:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    iop = np.asarray(ds.ImageOrientationPatient, float)
    return float(np.asarray(ds.ImagePositionPatient, float) @ np.cross(iop[:3], iop[3:]))


def test_enhanced_multiframe_ct_equals_its_single_frame_source(shared_data: Path) -> None:
    for size in ("23x38x3", "24x38x3"):
        base = shared_data / "dcmqi_seg" / "segmentations" / size
        single = load_volume(base / "image")
        multi = load_volume(next((base / "multiframe").iterdir()))
        assert multi.geometry.same_grid(single.geometry, tol=1e-3)
        np.testing.assert_array_equal(multi.array, single.array)


def test_compressed_transfer_syntaxes_decode_identically(shared_data: Path,
                                                         tmp_path: Path) -> None:
    # The shared JPEG 2000 series decodes to what dcm2niix decodes (checked above); here the
    # other syntaxes: recompress a real uncompressed series and compare voxel by voxel.
    from pydicom.uid import JPEG2000Lossless, JPEGLosslessSV1, JPEGLSLossless, RLELossless

    src = sorted((shared_data / "ibsi_sts" / "dicom" / "STS_008" / "CT" / "image").iterdir())[:6]
    plain = load_series(src)
    for syntax in (RLELossless, JPEGLSLossless, JPEG2000Lossless):
        out = tmp_path / syntax.name.replace(" ", "_")
        out.mkdir()
        for f in src:
            ds = pydicom.dcmread(f)
            ds.compress(syntax)
            ds.save_as(out / f.name)
        assert pydicom.dcmread(next(out.iterdir())).file_meta.TransferSyntaxUID == syntax
        np.testing.assert_array_equal(load_volume(out).array, plain.array, err_msg=syntax.name)
    # pydicom cannot encode JPEG Lossless (process 14); GDCM transcodes it.
    import gdcm

    out = tmp_path / "jpeg_lossless"
    out.mkdir()
    for f in src:
        reader = gdcm.ImageReader()
        reader.SetFileName(str(f))
        assert reader.Read()
        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGLosslessProcess14_1))
        change.SetInput(reader.GetImage())
        assert change.Change()
        writer = gdcm.ImageWriter()
        writer.SetFileName(str(out / f.name))
        writer.SetFile(reader.GetFile())
        writer.SetImage(change.GetOutput())
        assert writer.Write()
    assert pydicom.dcmread(next(out.iterdir())).file_meta.TransferSyntaxUID == JPEGLosslessSV1
    np.testing.assert_array_equal(load_volume(out).array, plain.array)
    jp2 = load_volume(shared_data / "totalseg_example" / "example_ct_dicom")
    assert pydicom.dcmread(next((shared_data / "totalseg_example" / "example_ct_dicom")
                                .iterdir())).file_meta.TransferSyntaxUID.is_compressed
    assert jp2.shape == (20, 512, 512)


@pytest.fixture()
def sts008_copy(shared_data: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "STS_008"
    shutil.copytree(shared_data / "ibsi_sts" / "dicom" / "STS_008" / "CT" / "image", dst)
    for f in dst.iterdir():
        f.chmod(0o644)
    return dst


def _slices_by_position(folder: Path) -> list[Path]:
    return sorted(folder.iterdir(), key=_position_along_normal)


def test_missing_slice_warns_and_keeps_geometry(sts008_copy: Path) -> None:
    full = load_volume(sts008_copy)
    victim = _slices_by_position(sts008_copy)[20]
    victim.unlink()
    gappy = load_volume(sts008_copy)
    assert gappy.geometry.same_grid(full.geometry, tol=1e-3)
    assert any("1 slice(s) missing" in w for w in gappy.warnings)
    assert (gappy.array[20] == gappy.array.min()).all()
    np.testing.assert_array_equal(gappy.array[21:], full.array[21:])
    with pytest.raises(LoadError, match="missing"):
        load_volume(sts008_copy, gaps="error")


def test_uneven_spacing_is_resampled_with_warning(sts008_copy: Path) -> None:
    # Move the upper half of the slices 1 mm further up: spacing is no longer regular.
    for f in _slices_by_position(sts008_copy)[25:]:
        ds = pydicom.dcmread(f)
        ds.ImagePositionPatient[2] = float(ds.ImagePositionPatient[2]) + 1.0
        ds.save_as(f)
    vol = load_volume(sts008_copy)
    assert any("unevenly spaced" in w for w in vol.warnings)
    with pytest.raises(LoadError, match="unevenly"):
        load_volume(sts008_copy, gaps="error")


def test_slices_in_two_far_stacks_are_refused(sts008_copy: Path) -> None:
    # Three slices 25 m away: not one damaged position but another stack; filling the gap
    # would build about 7,600 blank slices.
    moved = _slices_by_position(sts008_copy)[-3:]
    for f in moved:
        ds = pydicom.dcmread(f)
        ds.ImagePositionPatient[2] = float(ds.ImagePositionPatient[2]) + 25000.0
        ds.save_as(f)
    with pytest.raises(LoadError, match=r"2 stacks of slices up to 250\d\d mm apart") as err:
        load_volume(sts008_copy)
    assert moved[0].name in str(err.value)


def test_gantry_tilt_is_reported(sts008_copy: Path) -> None:
    for n, f in enumerate(_slices_by_position(sts008_copy)):
        ds = pydicom.dcmread(f)
        ds.ImagePositionPatient[1] = float(ds.ImagePositionPatient[1]) + 0.3 * n  # shear in y
        ds.save_as(f)
    vol = load_volume(sts008_copy)
    assert any("tilt" in w for w in vol.warnings)


def test_mixed_series_folder(shared_data: Path, tmp_path: Path) -> None:
    mixed = tmp_path / "mixed"
    shutil.copytree(shared_data / "ibsi_sts" / "dicom" / "STS_008" / "CT" / "image", mixed / "a")
    shutil.copytree(shared_data / "dcmqi_seg" / "segmentations" / "ct-3slice", mixed / "b")
    index = index_folder(mixed)
    series = index.image_series()
    assert sorted(len(s.files) for s in series) == [3, 51]
    with pytest.raises(LoadError, match="2 image series found"):
        load_volume(mixed)
    small = next(s for s in series if len(s.files) == 3)
    assert load_volume(mixed, series_uid=small.series_uid).shape == (3, 512, 512)
    # A single file opens its own series, not the folder's other one.
    assert load_volume(small.files[0]).shape == (3, 512, 512)


def test_bad_inputs_give_one_clear_error(sts008_copy: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LoadError, match="no DICOM image series") as err:
        load_volume(empty)
    assert str(empty) in str(err.value)

    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(LoadError, match="not a DICOM file") as err:
        load_volume(text)
    assert str(text) in str(err.value)

    # Truncated inside the pixel data: the header indexes, decoding fails and names the file.
    victim = _slices_by_position(sts008_copy)[10]
    victim.write_bytes(victim.read_bytes()[:-5000])
    with pytest.raises(LoadError) as err:
        load_volume(sts008_copy)
    assert victim.name in str(err.value)

    # Truncated inside the header: the index lists it as unreadable.
    header_cut = tmp_path / "cut.dcm"
    header_cut.write_bytes(victim.read_bytes()[:300])
    with pytest.raises(LoadError, match=r"cut\.dcm"):
        load_volume(header_cut)

    with pytest.raises(LoadError, match="no such file"):
        load_volume(tmp_path / "missing")


@pytest.mark.parametrize("name,files", CT_SERIES, ids=[n for n, _ in CT_SERIES])
def test_index_headers_fast_path_equals_full_read(name: str, files: list[Path]) -> None:
    # Loading with the index's headers reads uncompressed pixels straight from the file's end;
    # it must give exactly what pydicom's full read gives.
    index = index_folder(files[0].parent)
    entry = next(s for s in index.image_series() if s.files[0] in files)
    fast = load_series(entry.files, headers=entry.headers)
    full = load_series(entry.files)
    np.testing.assert_array_equal(fast.array, full.array)
    assert fast.geometry == full.geometry
