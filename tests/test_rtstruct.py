"""RTSTRUCT import against real structure sets and their IBSI reference masks."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.progress import Cancelled
from medseg_gui.core.segmentation import SegmentSource
from medseg_gui.core.volume import geometry_of
from medseg_gui.io.errors import LoadError
from medseg_gui.io.rtstruct import list_structures, read_rtstruct

# case -> (RTSTRUCT, CT series folder, reference mask, ROI name), relative to the shared data
CASES = {
    "STS_001": ("ibsi_sts/dicom/STS_001/CT/mask/RS.dcm", "ibsi_sts/dicom/STS_001/CT/image",
                "ibsi_sts/nifti/STS_001/CT_mask.nii.gz", "GTV_Mass_CT"),
    "STS_008": ("ibsi_sts/dicom/STS_008/CT/mask/RS.dcm", "ibsi_sts/dicom/STS_008/CT/image",
                "ibsi_sts/nifti/STS_008/CT_mask.nii.gz", "GTV_Mass_CT"),
    "ibsi_lung": ("ibsi_lung/dicom/mask/DCM_RS_00060.dcm", "ibsi_lung/dicom/image",
                  "ibsi_lung/nifti/mask/mask.nii.gz", "GTV-1"),
}


def _ct_grid(folder: Path) -> tuple[Geometry, str]:
    """The grid SimpleITK builds for a DICOM CT series, and the series' frame of reference."""
    reader = sitk.ImageSeriesReader()
    files = reader.GetGDCMSeriesFileNames(str(folder))
    reader.SetFileNames(files)
    for_uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).FrameOfReferenceUID)
    return geometry_of(reader.Execute()), for_uid


def _reference(path: Path) -> tuple[Geometry, np.ndarray]:
    image = sitk.ReadImage(str(path))
    return geometry_of(image), sitk.GetArrayFromImage(image) > 0


def _sts008(shared_data: Path) -> tuple[Path, Geometry]:
    rs, _, mask, _ = CASES["STS_008"]
    return shared_data / rs, _reference(shared_data / mask)[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_reference_mask(shared_data: Path, case: str) -> None:
    rs, ct, mask, roi = CASES[case]
    geometry, reference = _reference(shared_data / mask)
    ct_geometry, for_uid = _ct_grid(shared_data / ct)
    assert geometry.same_grid(ct_geometry, tol=1e-3)

    result = read_rtstruct(shared_data / rs, geometry, frame_of_reference_uid=for_uid)

    seg = result.segmentation
    assert result.warnings == []
    assert seg.validate() == []
    assert [(s.label, s.name, s.source) for s in seg.segments] == [
        (1, roi, SegmentSource.MANUAL)
    ]
    got = seg.mask(1)
    dice = 2.0 * np.logical_and(got, reference).sum() / (got.sum() + reference.sum())
    print(f"{case}: Dice {dice:.4f} ({got.sum()} voxels, reference {reference.sum()})")
    assert dice >= 0.98


def test_list_structures(shared_data: Path) -> None:
    for rs, _, _, roi in CASES.values():
        infos = list_structures(shared_data / rs)
        assert [i.name for i in infos] == [roi]
        assert infos[0].number == 1 and infos[0].contour_count > 0
        assert infos[0].frame_of_reference_uid.startswith("1.")
    assert list_structures(shared_data / CASES["STS_001"][0])[0].color == (255, 0, 0)


def test_colour_and_name_selection(shared_data: Path) -> None:
    path, geometry = _sts008(shared_data)
    seg = read_rtstruct(path, geometry, names=["GTV_Mass_CT"]).segmentation
    assert seg.segments[0].color == (255, 0, 0)
    with pytest.raises(LoadError, match="no ROI named 'Liver'"):
        read_rtstruct(path, geometry, names=["Liver"])


def test_ct_slice_is_not_an_rtstruct(shared_data: Path) -> None:
    _, geometry = _sts008(shared_data)
    ct_slice = next((shared_data / CASES["STS_008"][1]).glob("*.dcm"))
    with pytest.raises(LoadError, match="not an RT Structure Set") as info:
        read_rtstruct(ct_slice, geometry)
    assert str(ct_slice) in str(info.value)
    with pytest.raises(LoadError):
        list_structures(ct_slice)


def test_truncated_file(shared_data: Path, tmp_path: Path) -> None:
    path, geometry = _sts008(shared_data)
    truncated = tmp_path / "RS_truncated.dcm"
    truncated.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(LoadError) as info:
        read_rtstruct(truncated, geometry)
    assert str(truncated) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="not a readable DICOM file"):
        list_structures(tmp_path / "nothing.dcm")


def test_wrong_frame_of_reference(shared_data: Path) -> None:
    path, geometry = _sts008(shared_data)
    with pytest.raises(LoadError, match="frame of reference"):
        read_rtstruct(path, geometry, frame_of_reference_uid="1.2.3.4")


def test_progress_and_cancel(shared_data: Path) -> None:
    path, geometry = _sts008(shared_data)
    seen: list[float] = []

    def record(fraction: float, message: str) -> bool:
        seen.append(fraction)
        return True

    read_rtstruct(path, geometry, progress=record)
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    with pytest.raises(Cancelled):
        read_rtstruct(path, geometry, progress=lambda f, m: False)


# -- synthetic ROIs added to a real structure set -------------------------------------------------

def _contour(geometry: Geometry, ij: list[tuple[float, float]], k: int, kind: str) -> Dataset:
    world = geometry.index_to_world([(i, j, k) for i, j in ij])
    item = Dataset()
    item.ContourGeometricType = kind
    item.NumberOfContourPoints = len(ij)
    item.ContourData = [round(float(v), 3) for v in world.reshape(-1)]
    return item


def _square(lo: float, hi: float) -> list[tuple[float, float]]:
    return [(lo, lo), (hi, lo), (hi, hi), (lo, hi)]


def _add_roi(ds: Dataset, number: int, name: str, contours: list[Dataset]) -> None:
    roi = Dataset()
    roi.ROINumber = number
    roi.ROIName = name
    roi.ReferencedFrameOfReferenceUID = ds.StructureSetROISequence[0].ReferencedFrameOfReferenceUID
    ds.StructureSetROISequence.append(roi)
    item = Dataset()
    item.ReferencedROINumber = number
    item.ContourSequence = Sequence(contours)
    ds.ROIContourSequence.append(item)


def test_holes_overlap_and_skipped_contours(shared_data: Path, tmp_path: Path) -> None:
    path, geometry = _sts008(shared_data)
    ds = pydicom.dcmread(path)
    first = ds.ROIContourSequence[0].ContourSequence[0]
    # Half-integer corners keep pixel centres off the edges: 21x21 outer, 11x11 hole.
    ring = [_contour(geometry, _square(9.5, 30.5), 2, "CLOSED_PLANAR"),
            _contour(geometry, _square(14.5, 25.5), 2, "CLOSED_PLANAR"),
            _contour(geometry, _square(40, 50), 2, "OPEN_PLANAR"),
            _contour(geometry, [(45, 45)], 2, "POINT")]
    _add_roi(ds, 2, "Ring", ring)
    _add_roi(ds, 3, "Copy", [copy.deepcopy(first)])
    out = tmp_path / "RS_synthetic.dcm"
    ds.save_as(out)

    result = read_rtstruct(out, geometry)

    seg = result.segmentation
    assert [s.name for s in seg.segments] == ["GTV_Mass_CT", "Ring", "Copy"]
    assert seg.segments[1].color != seg.segments[2].color  # palette colours, none in the file
    ring_mask = seg.mask(2)
    assert ring_mask.sum() == 21 * 21 - 11 * 11
    assert ring_mask[2, 20, 20] == 0 and ring_mask[2, 10, 10] == 1
    k = round(float(geometry.world_to_index(np.asarray(first.ContourData[:3], float))[2]))
    assert seg.mask(1)[k].sum() == 0 and seg.mask(3)[k].sum() > 0
    text = "\n".join(result.warnings)
    assert "Copy overlaps GTV_Mass_CT" in text
    assert "OPEN_PLANAR" in text and "POINT" in text


def test_contour_not_on_one_slice(shared_data: Path, tmp_path: Path) -> None:
    path, geometry = _sts008(shared_data)
    ds = pydicom.dcmread(path)
    contour = ds.ROIContourSequence[0].ContourSequence[0]
    data = [float(v) for v in contour.ContourData]
    data[2] += 2 * geometry.spacing[2]
    contour.ContourData = data
    out = tmp_path / "RS_tilted.dcm"
    ds.save_as(out)
    with pytest.raises(LoadError, match="not on one slice"):
        read_rtstruct(out, geometry)
