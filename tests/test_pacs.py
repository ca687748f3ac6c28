"""DICOMweb and DIMSE against a real Orthanc on loopback, started and stopped by this module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pynetdicom")
pytest.importorskip("dicomweb_client")

from medseg_gui.core.segmentation import Segment, Segmentation, SegmentSource
from medseg_gui.io.dicom_seg import read_dicom_seg, write_dicom_seg
from medseg_gui.io.errors import LoadError
from medseg_gui.io.label_nifti import read_label_nifti
from medseg_gui.io.loader import load_volume
from medseg_gui.io.pacs import DicomWebClient, DimseClient
from tests.orthanc import free_port, running_orthanc


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    with running_orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        yield server


def test_pacs_round_trip(orthanc: dict[str, object], shared_data: Path, tmp_path: Path) -> None:
    series_dir = shared_data / "ibsi_sts/dicom/STS_008/CT/image"
    files = sorted(series_dir.glob("*.dcm"))
    ct = load_volume(series_dir)
    web = DicomWebClient(str(orthanc["dicomweb"]))
    dimse = DimseClient("127.0.0.1", int(str(orthanc["port"])), "ORTHANC")
    assert dimse.echo()

    # upload the study (STOW-RS), find it both ways
    web.store(files)
    studies = web.search_studies(PatientID="STS_008")
    assert [str(s.StudyInstanceUID) for s in studies] == [ct.info.study_uid]
    found = dimse.find("STUDY", PatientID="STS_008")
    assert [str(s.StudyInstanceUID) for s in found] == [ct.info.study_uid]
    series = dimse.find("SERIES", StudyInstanceUID=ct.info.study_uid)
    assert {str(s.SeriesInstanceUID) for s in series} == {ct.info.series_uid}

    # retrieve it both ways and load it: the same voxels as the original
    for kind, got in [
        ("wado", web.retrieve_series(ct.info.study_uid, ct.info.series_uid, tmp_path / "wado")),
        ("cget", dimse.get_series(ct.info.study_uid, ct.info.series_uid, tmp_path / "cget")),
    ]:
        assert len(got) == len(files), kind
        again = load_volume(tmp_path / kind)
        assert again.geometry == ct.geometry and np.array_equal(again.array, ct.array)

    # segment (the GT mask stands in for the model), write a SEG against the retrieved series
    gt = read_label_nifti(shared_data / "ibsi_sts/nifti/STS_008/CT_mask.nii.gz")
    seg = Segmentation(gt.labelmap, ct.geometry, [
        Segment(1, "GTV", source=SegmentSource.AUTOMATIC, model="sts-unet:1.0")])
    retrieved = sorted((tmp_path / "wado").glob("*.dcm"))
    seg_a = write_dicom_seg(seg, retrieved, tmp_path / "seg_stow.dcm")
    seg_b = write_dicom_seg(seg, retrieved, tmp_path / "seg_cstore.dcm")
    web.store([seg_a])
    dimse.store([seg_b])

    # read both SEGs back from Orthanc next to their study
    listed = web.search_series(ct.info.study_uid, Modality="SEG")
    assert len(listed) == 2
    for item in listed:
        folder = tmp_path / f"back_{item.SeriesInstanceUID}"
        (path,) = web.retrieve_series(ct.info.study_uid, str(item.SeriesInstanceUID), folder)
        (back,) = read_dicom_seg(path, ct.geometry)
        assert np.array_equal(back.labelmap, seg.labelmap)
        assert back.segments[0].model == "sts-unet:1.0"


def test_unreachable_pacs_is_one_clear_error() -> None:
    dimse = DimseClient("127.0.0.1", free_port(), "NOBODY", timeout=2)
    with pytest.raises(LoadError, match=r"NOBODY@127\.0\.0\.1"):
        dimse.echo()
    web = DicomWebClient(f"http://127.0.0.1:{free_port()}/dicom-web", timeout=2)
    with pytest.raises(LoadError, match="QIDO-RS"):
        web.search_studies()
