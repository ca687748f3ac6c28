"""Label-map NIfTI, Slicer .seg.nrrd and DICOM SEG: round trips on real CT and shared SEG files."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest

from medseg_gui.core.segmentation import NEOPLASM, TISSUE, Segment, Segmentation, SegmentSource
from medseg_gui.core.volume import Volume
from medseg_gui.io.dicom_seg import read_dicom_seg, source_files, write_dicom_seg
from medseg_gui.io.errors import LoadError
from medseg_gui.io.label_nifti import read_label_nifti, sidecar_path, write_label_nifti
from medseg_gui.io.loader import load_volume
from medseg_gui.io.seg_nrrd import read_seg_nrrd, write_seg_nrrd


@pytest.fixture(scope="module")
def sts(shared_data: Path) -> tuple[Volume, Segmentation]:
    """STS_008: the DICOM CT and its GT mask (NIfTI, same grid) with a two-segment table."""
    ct = load_volume(shared_data / "ibsi_sts/dicom/STS_008/CT/image")
    gt = read_label_nifti(shared_data / "ibsi_sts/nifti/STS_008/CT_mask.nii.gz")
    assert gt.geometry.same_grid(ct.geometry, tol=1e-3)
    lm = gt.labelmap.copy()
    lm[(ct.array > 200) & (lm == 0)] = 2  # a second, real structure: bone-like voxels
    segs = [
        Segment(1, "GTV", (230, 80, 60), type=NEOPLASM, source=SegmentSource.SEMIAUTOMATIC,
                model="sts-unet:1.2.0"),
        Segment(2, "Dense tissue", (60, 180, 75), type=TISSUE, source=SegmentSource.AUTOMATIC,
                model="sts-unet:1.2.0"),
    ]
    return ct, Segmentation(lm, ct.geometry, segs)


def test_label_nifti_round_trip(sts: tuple[Volume, Segmentation], tmp_path: Path) -> None:
    _, seg = sts
    out = write_label_nifti(seg, tmp_path / "case.nii.gz")
    assert sidecar_path(out).name == "case.json"
    back = read_label_nifti(out)
    assert back.geometry == seg.geometry  # exact, through the sidecar
    assert np.array_equal(back.labelmap, seg.labelmap) and back.labelmap.dtype == np.uint8
    assert back.segments == seg.segments
    with pytest.raises(LoadError, match="exists"):
        write_label_nifti(seg, out)
    write_label_nifti(seg, out, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.json", "case.nii.gz"]


def test_seg_nrrd_round_trip_and_header(sts: tuple[Volume, Segmentation], tmp_path: Path) -> None:
    _, seg = sts
    out = write_seg_nrrd(seg, tmp_path / "case.seg.nrrd")
    (back,) = read_seg_nrrd(out)
    assert back.geometry == seg.geometry
    assert np.array_equal(back.labelmap, seg.labelmap)
    assert back.segments == seg.segments
    head = out.read_bytes().split(b"\n\n")[0].decode()
    for key in ("Segment1_ID:=Segment_2", "Segment0_LabelValue:=1", "Segment0_Layer:=0",
                "Segment1_Name:=Dense tissue", "SCT^108369006^Neoplasm", "Segment0_Extent:="):
        assert key in head
    # ITK (what Slicer builds on) reads the same voxels at the same place
    import SimpleITK as sitk

    img = sitk.ReadImage(str(out))
    assert np.array_equal(sitk.GetArrayFromImage(img), seg.labelmap)
    assert np.allclose(img.GetOrigin(), seg.geometry.origin)
    with pytest.raises(LoadError, match="exists"):
        write_seg_nrrd(seg, out)


def test_dicom_seg_round_trip_dciodvfy_highdicom(sts: tuple[Volume, Segmentation],
                                                 tmp_path: Path) -> None:
    ct, seg = sts
    out = write_dicom_seg(seg, source_files(ct), tmp_path / "seg.dcm")
    if shutil.which("dciodvfy"):
        res = subprocess.run(["dciodvfy", str(out)], capture_output=True, text=True, timeout=60)
        errors = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("Error")]
        assert errors == []
    hs = hd.seg.segread(out)
    assert hs.SegmentationType == "BINARY"
    assert hs.FrameOfReferenceUID == ct.info.frame_of_reference_uid
    assert hs.StudyInstanceUID == ct.info.study_uid
    refs = {r.SeriesInstanceUID for r in hs.ReferencedSeriesSequence}
    assert refs == {ct.info.series_uid}
    items = hs.SegmentSequence
    assert [it.SegmentAlgorithmType for it in items] == ["SEMIAUTOMATIC", "AUTOMATIC"]
    algo = items[0].SegmentationAlgorithmIdentificationSequence[0]
    assert (algo.AlgorithmName, algo.AlgorithmVersion) == ("sts-unet", "1.2.0")
    assert items[0].SegmentedPropertyTypeCodeSequence[0].CodeValue == "108369006"
    (back,) = read_dicom_seg(out, ct.geometry)
    assert back.geometry == ct.geometry
    assert np.array_equal(back.labelmap, seg.labelmap)
    assert [(s.label, s.name, s.source, s.model, s.type) for s in back.segments] == [
        (s.label, s.name, s.source, s.model, s.type) for s in seg.segments]


def test_dicom_seg_labelmap_type_round_trip(sts: tuple[Volume, Segmentation],
                                            tmp_path: Path) -> None:
    ct, seg = sts
    out = write_dicom_seg(seg, source_files(ct), tmp_path / "lm.dcm",
                          segmentation_type="LABELMAP")
    (back,) = read_dicom_seg(out, ct.geometry)
    assert np.array_equal(back.labelmap, seg.labelmap)


def test_dicom_seg_refuses_shifted_or_manual_geometry(sts: tuple[Volume, Segmentation],
                                                      tmp_path: Path) -> None:
    ct, seg = sts
    moved = dataclasses.replace(seg.geometry, origin=(0.0, 0.0, 0.0))
    with pytest.raises(LoadError, match="not a slice"):
        write_dicom_seg(Segmentation(seg.labelmap, moved, seg.segments), source_files(ct),
                        tmp_path / "x.dcm")
    assert not (tmp_path / "x.dcm").exists()


DCMQI = "dcmqi_seg/segmentations/"


@pytest.mark.parametrize(("seg_file", "nrrds"), [
    ("liver.dcm", ["liver_seg.nrrd"]),
    ("partial_overlaps.dcm", ["partial_overlaps-1.nrrd", "partial_overlaps-2.nrrd",
                              "partial_overlaps-3.nrrd"]),
])
def test_dcmqi_seg_matches_nrrd(shared_data: Path, seg_file: str, nrrds: list[str]) -> None:
    ct = load_volume(shared_data / DCMQI / "ct-3slice")
    layers = read_dicom_seg(shared_data / DCMQI / seg_file, ct.geometry)
    assert len(layers) == len(nrrds)
    for layer, name in zip(layers, nrrds, strict=True):
        (ref,) = read_seg_nrrd(shared_data / DCMQI / name)
        assert ref.geometry.same_grid(layer.geometry, tol=1e-3)
        assert np.array_equal(ref.labelmap, layer.labelmap)


@pytest.mark.parametrize("size", ["23x38x3", "24x38x3"])
def test_dcmqi_odd_frame_sizes(shared_data: Path, size: str) -> None:
    base = shared_data / DCMQI / size
    img = load_volume(base / "image")
    (layer,) = read_dicom_seg(base / "seg/label.seg", img.geometry)
    (ref,) = read_seg_nrrd(base / "nrrd/label.nrrd")
    assert ref.geometry.same_grid(layer.geometry, tol=1e-3)
    assert np.array_equal(ref.labelmap > 0, layer.labelmap > 0)


@pytest.mark.parametrize("name", ["ppv5", "noppv"])
def test_dcmqi_labelmap_seg(shared_data: Path, name: str) -> None:
    img = load_volume(shared_data / DCMQI / "24x38x3/image")
    (layer,) = read_dicom_seg(shared_data / DCMQI / f"sparse-labelmap-{name}.dcm", img.geometry)
    (ref,) = read_seg_nrrd(shared_data / DCMQI / f"sparse_labelmap_{name}_seg.nrrd")
    # value 5 in the ppv5 NRRD is the SEG's pixel padding value, not a segment
    assert np.array_equal(layer.labelmap, (ref.labelmap == 1).astype(np.uint8))
    assert layer.segments[0].name == "Liver"


def _world_voxels(seg: Segmentation, label: int) -> set[tuple[float, ...]]:
    ijk = np.argwhere(seg.labelmap == label)[:, ::-1]
    return {tuple(p) for p in np.round(seg.geometry.index_to_world(ijk), 2)}


@pytest.mark.parametrize("name", [
    "seg_image_ct_binary", "seg_image_ct_binary_overlap", "seg_image_ct_binary_fractional",
    "seg_image_ct_true_fractional", "seg_image_ct_binary_single_frame",
])
def test_highdicom_files_match_highdicom(shared_data: Path, name: str) -> None:
    path = shared_data / "highdicom_seg" / f"{name}.dcm"
    layers = read_dicom_seg(path)
    hs = hd.seg.segread(path)
    vol = hs.get_volume(combine_segments=False, rescale_fractional=True)
    for n in range(vol.array.shape[-1]):
        idx = np.argwhere(vol.array[..., n] >= 0.5)
        expect = {tuple(p) for p in np.round(idx @ vol.affine[:3, :3].T + vol.affine[:3, 3], 2)}
        layer = next(x for x in layers if any(s.label == n + 1 for s in x.segments))
        assert _world_voxels(layer, n + 1) == expect
    if name.endswith("overlap"):
        assert len(layers) == 2  # overlapping segments -> one Segmentation per layer
