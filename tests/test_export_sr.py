"""The DICOM SR measurement report (TID 1500) on real CT: validated, read back by highdicom."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from medseg_gui.core.annotations import (
    Annotations,
    AxisEdit,
    AxisName,
    Ruler,
    annotations_file,
    save_annotations,
)
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


def _line_of(measurement: hd.sr.Measurement, frame_uid: str) -> np.ndarray:
    """The end points of the POLYLINE a measurement is inferred from (LPS mm)."""
    (coords,) = measurement.referenced_coordinates
    assert coords.graphic_type == hd.sr.GraphicTypeValues3D.POLYLINE
    assert coords.frame_of_reference_uid == frame_uid
    return np.asarray(coords.value, dtype=float)


def _algorithm(measurement: hd.sr.Measurement) -> str | None:
    """The algorithm name a measurement carries (TID 4019), ``None`` for a reader's."""
    names = [str(it.TextValue) for it in measurement[0].ContentSequence
             if it.ConceptNameCodeSequence[0].CodeMeaning == "Algorithm Name"]
    return names[0] if names else None


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
    axes_groups = sr.content.get_image_measurement_groups()
    assert [g.tracking_identifier for g in axes_groups] == ["1 GTV RECIST axes",
                                                           "2 Corner RECIST axes"]
    frame_uid = ct.info.frame_of_reference_uid
    for label, group, axes in zip((1, 2), groups, axes_groups, strict=True):
        m = measure_segment(seg, label, ct)
        assert m.recist is not None and m.recist.short is not None
        assert m.mean is not None and m.minimum is not None and m.maximum is not None
        got = _by_name(group)
        expected = {"Volume": m.volume_ml, "Diameter Maximum": m.longest_diameter_mm,
                    "Attenuation Coefficient Mean": m.mean,
                    "Attenuation Coefficient Minimum": m.minimum,
                    "Attenuation Coefficient Maximum": m.maximum}
        assert got == pytest.approx(expected, rel=1e-9)
        assert group.referenced_segment is not None
        sop = group.referenced_segment[0].ReferencedSOPSequence[0]
        assert sop.ReferencedSOPInstanceUID == seg_uid and sop.ReferencedSegmentNumber == label
        units = {mm.name.meaning: mm.unit.value for mm in group.get_measurements()}
        assert units["Volume"] == "ml"
        # The RECIST axes: a group of their own for the same finding, each axis with its line.
        assert axes.tracking_uid == group.tracking_uid
        lines = {mm.name.meaning: mm for mm in axes.get_measurements()}
        assert set(lines) == {"Long axis", "Short axis"}
        for name, axis in (("Long axis", m.recist.long), ("Short axis", m.recist.short)):
            mm = lines[name]
            assert float(mm.value) == pytest.approx(axis.length_mm, rel=1e-9)
            assert mm.unit.value == "mm" and mm.method == codes.DCM.RECIST1Point1
            assert _line_of(mm, frame_uid) == pytest.approx(
                np.array([axis.start, axis.end]), abs=1e-3)
            assert _algorithm(mm) == "medseg-gui RECIST"  # computed, not a reader's
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


def test_sr_carries_rulers_and_edited_axes_with_their_lines(
        sts: tuple[Volume, Segmentation], tmp_path: Path, shared_data: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A reader's ruler and edited long axis, saved for the study as the app does, reach the
    SR through ``medseg export`` (and the report), coordinates included."""
    ct, seg = sts
    m = measure_segment(seg, 1, ct)
    assert m.recist is not None and m.recist.short is not None
    z = m.recist.long.start[2]
    ruler = Ruler("r1", (100.0, 0.0, z), (130.0, 40.0, z), "reader-one", "2025-01-31T14:05:09Z")
    long_end = (m.recist.long.end[0] + 6.0, m.recist.long.end[1] - 2.0, z)
    edit = AxisEdit(1, AxisName.LONG, m.recist.long.start, long_end, "reader-one",
                    "2025-01-31T14:06:00Z")
    notes = Annotations((ruler,), (edit,))
    save_annotations(notes, annotations_file(ct), ct)  # where the app keeps the study's
    study = shared_data / "ibsi_sts/dicom/STS_008/CT/image"
    mask = write_label_nifti(seg, tmp_path / "mask.nii.gz")
    assert _cli(["export", str(study), "--mask", str(mask), "--format", "sr",
                 "-o", str(tmp_path / "m.dcm")]) == 0
    out = capsys.readouterr().out
    assert "with 1 ruler(s) and 1 edited RECIST axis (axes) from" in out
    if shutil.which("dciodvfy"):
        errors, warnings = _dciodvfy(tmp_path / "m.dcm")
        assert errors == [] and warnings <= 2
    sr = hd.sr.srread(tmp_path / "m.dcm")
    frame_uid = ct.info.frame_of_reference_uid
    groups = {g.tracking_identifier: g for g in sr.content.get_image_measurement_groups()}
    assert set(groups) == {"1 GTV RECIST axes (edited)", "2 Corner RECIST axes", "Ruler 1"}
    (length,) = groups["Ruler 1"].get_measurements()
    assert length.name == codes.SCT.Length and length.unit.value == "mm"
    assert float(length.value) == pytest.approx(50.0, abs=1e-9)
    assert _line_of(length, frame_uid) == pytest.approx(np.array([ruler.start, ruler.end]),
                                                        abs=1e-3)
    assert _algorithm(length) is None
    lines = {mm.name.meaning: mm for mm in groups["1 GTV RECIST axes (edited)"].get_measurements()}
    assert float(lines["Long axis"].value) == pytest.approx(edit.length_mm, rel=1e-9)
    assert _line_of(lines["Long axis"], frame_uid) == pytest.approx(
        np.array([edit.start, edit.end]), abs=1e-3)
    assert _algorithm(lines["Long axis"]) is None  # the reader's: no algorithm
    assert _algorithm(lines["Short axis"]) == "medseg-gui RECIST"  # still the computed one
    assert float(lines["Short axis"].value) == pytest.approx(m.recist.short.length_mm, rel=1e-9)
    # The report carries them too: the edited length in place of the computed one, marked.
    assert _cli(["export", str(study), "--mask", str(mask), "--format", "report",
                 "-o", str(tmp_path / "r")]) == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    gtv = doc["segments"][0]
    assert gtv["recist_long_mm"] == round(edit.length_mm, 2) and gtv["recist_long_edited"]
    assert gtv["recist_long_computed_mm"] == round(m.recist.long.length_mm, 2)
    assert not gtv["recist_short_edited"]
    assert gtv["recist_long_lps_mm"][1] == [round(v, 3) for v in long_end]
    assert doc["rulers"][0]["length_mm"] == 50.0 and doc["rulers"][0]["by"] == "reader-one"
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert [r["name"] for r in rows] == ["GTV", "Corner", "Empty", "Ruler 1"]
    assert rows[0]["recist_long_edited"] == "True" and rows[3]["ruler_length_mm"] == "50.0"
    assert len(rows[3]["ruler_lps_mm"].split()) == 6
    # An explicit file that is not there is one clear error.
    assert _cli(["export", str(study), "--mask", str(mask), "--format", "sr", "--annotations",
                 str(tmp_path / "none.json"), "-o", str(tmp_path / "x.dcm")]) == 2
    assert "no such annotations file" in capsys.readouterr().out
