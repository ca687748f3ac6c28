"""The DICOM SR measurement report (TID 1500) on real CT: validated, read back by highdicom."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from medseg_gui.core.measurements import measure_segment
from medseg_gui.core.segmentation import Segment, Segmentation, SegmentSource
from medseg_gui.core.volume import Volume
from medseg_gui.io.errors import LoadError
from medseg_gui.io.export_commands import export
from medseg_gui.io.label_nifti import read_label_nifti, write_label_nifti
from medseg_gui.io.loader import load_volume
from tests.test_export_more import _cli


@pytest.fixture(scope="module")
def sts(shared_data: Path) -> tuple[Volume, Segmentation]:
    ct = load_volume(shared_data / "ibsi_sts/dicom/STS_008/CT/image")
    gt = read_label_nifti(shared_data / "ibsi_sts/nifti/STS_008/CT_mask.nii.gz")
    lm = gt.labelmap.copy()
    lm[:, :20, :20][lm[:, :20, :20] == 0] = 2  # a box in a corner: a second, plain segment
    segs = [Segment(1, "GTV", source=SegmentSource.SEMIAUTOMATIC, model="sts-unet:1.2.0"),
            Segment(2, "Corner", (60, 180, 75)), Segment(3, "Empty", (0, 0, 200))]
    return ct, Segmentation(lm, ct.geometry, segs)


def _dciodvfy(path: Path) -> tuple[list[str], int]:
    res = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    lines = (res.stdout + res.stderr).splitlines()
    return [ln for ln in lines if ln.startswith("Error")], sum(ln.startswith("Warning")
                                                               for ln in lines)


def _by_name(group: hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations
             ) -> dict[str, float]:
    out = {}
    for m in group.get_measurements():
        key = m.name.meaning if m.derivation is None else f"{m.name.meaning} {m.derivation.meaning}"
        out[key] = float(m.value)
    return out


def test_sr_measures_every_segment(sts: tuple[Volume, Segmentation], tmp_path: Path) -> None:
    ct, seg = sts
    sr_path, seg_path = export(ct, seg, "sr", tmp_path / "m.dcm")
    assert seg_path.name == "m.seg.dcm"
    if shutil.which("dciodvfy"):
        for path in (sr_path, seg_path):
            errors, warnings = _dciodvfy(path)
            assert errors == [] and warnings <= 2, path  # the source's old-style PN: 1 warning
    sr = hd.sr.srread(sr_path)
    seg_uid = pydicom.dcmread(seg_path, stop_before_pixels=True).SOPInstanceUID
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert [g.tracking_identifier for g in groups] == ["1 GTV", "2 Corner"]  # not the empty one
    for label, group in zip((1, 2), groups, strict=True):
        m = measure_segment(seg, label, ct)
        assert m.recist is not None and m.recist.short is not None
        assert m.mean is not None and m.minimum is not None and m.maximum is not None
        got = _by_name(group)
        expected = {"Volume": m.volume_ml, "Diameter Maximum": m.longest_diameter_mm,
                    "Long axis": m.recist.long.length_mm, "Short axis": m.recist.short.length_mm,
                    "Attenuation Coefficient Mean": m.mean,
                    "Attenuation Coefficient Minimum": m.minimum,
                    "Attenuation Coefficient Maximum": m.maximum}
        assert got == pytest.approx(expected, rel=1e-9)
        assert group.referenced_segment is not None
        sop = group.referenced_segment[0].ReferencedSOPSequence[0]
        assert sop.ReferencedSOPInstanceUID == seg_uid and sop.ReferencedSegmentNumber == label
        units = {mm.name.meaning: mm.unit.value for mm in group.get_measurements()}
        assert units["Volume"] == "ml" and units["Long axis"] == "mm"
        assert all(mm.method == codes.DCM.RECIST1Point1 for mm in group.get_measurements()
                   if mm.name.meaning in ("Long axis", "Short axis"))
    evidence = {it.SeriesInstanceUID for it in sr.CurrentRequestedProcedureEvidenceSequence[0]
                .ReferencedSeriesSequence}
    assert ct.info.series_uid in evidence


def test_cli_references_a_given_seg_and_refuses_to_overwrite(
        sts: tuple[Volume, Segmentation], tmp_path: Path, shared_data: Path) -> None:
    ct, seg = sts
    study = shared_data / "ibsi_sts/dicom/STS_008/CT/image"
    mask = write_label_nifti(seg, tmp_path / "mask.nii.gz")
    first = tmp_path / "a.dcm"
    assert _cli(["export", str(study), "--mask", str(mask), "--format", "sr",
                 "-o", str(first)]) == 0
    given = tmp_path / "a.seg.dcm"
    second = tmp_path / "b.dcm"
    assert _cli(["export", str(study), "--mask", str(mask), "--format", "sr", "--seg",
                 str(given), "-o", str(second)]) == 0
    assert not (tmp_path / "b.seg.dcm").exists()
    uid = pydicom.dcmread(given, stop_before_pixels=True).SOPInstanceUID
    sr = pydicom.dcmread(second)
    assert uid in str(sr)  # referenced by each measurement group and in the evidence
    assert _cli(["export", str(study), "--mask", str(mask), "--format", "sr",
                 "-o", str(first)]) != 0  # exists: nothing is replaced
    renamed = Segmentation((seg.labelmap == 1).astype(np.uint8), seg.geometry,
                           [Segment(1, "Other")])
    with pytest.raises(LoadError, match="no segment named 'Other'"):
        export(ct, renamed, "sr", tmp_path / "c.dcm", seg_path=given)
