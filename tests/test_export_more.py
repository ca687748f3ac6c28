"""RTSTRUCT export, STL/OBJ surfaces, the case report and ``medseg export`` on real CT."""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from medseg_gui.core.metrics import dice
from medseg_gui.core.segmentation import Segment, Segmentation, SegmentSource
from medseg_gui.core.volume import Volume
from medseg_gui.io.dicom_seg import source_files
from medseg_gui.io.errors import LoadError
from medseg_gui.io.export_commands import add_commands, export
from medseg_gui.io.label_nifti import read_label_nifti, write_label_nifti
from medseg_gui.io.loader import load_volume
from medseg_gui.io.masks import load_mask
from medseg_gui.io.report import build_report
from medseg_gui.io.rtstruct_write import write_rtstruct
from medseg_gui.io.surfaces import export_surfaces, read_stl, segment_mesh


@pytest.fixture(scope="module")
def sts(shared_data: Path) -> tuple[Volume, Segmentation]:
    ct = load_volume(shared_data / "ibsi_sts/dicom/STS_008/CT/image")
    gt = read_label_nifti(shared_data / "ibsi_sts/nifti/STS_008/CT_mask.nii.gz")
    lm = gt.labelmap.copy()
    lm[(ct.array > 200) & (lm == 0)] = 2
    segs = [Segment(1, "GTV", source=SegmentSource.SEMIAUTOMATIC, model="sts-unet:1.2.0"),
            Segment(2, "Dense", (60, 180, 75), source=SegmentSource.MANUAL)]
    return ct, Segmentation(lm, ct.geometry, segs)


def test_rtstruct_round_trip(sts: tuple[Volume, Segmentation], tmp_path: Path) -> None:
    from medseg_gui.io.rtstruct import read_rtstruct

    ct, seg = sts
    out = write_rtstruct(seg, source_files(ct), tmp_path / "rs.dcm")
    if shutil.which("dciodvfy"):
        res = subprocess.run(["dciodvfy", str(out)], capture_output=True, text=True, timeout=60)
        assert [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("Error")] == []
    back = read_rtstruct(out, ct.geometry, frame_of_reference_uid=ct.info.frame_of_reference_uid)
    assert [s.name for s in back.segmentation.segments] == ["GTV", "Dense"]
    for s in seg.segments:
        assert dice(seg.mask(s.label), back.segmentation.mask(s.label)) >= 0.95
    with pytest.raises(LoadError, match="exists"):
        write_rtstruct(seg, source_files(ct), out)


def test_surfaces_in_world_mm(sts: tuple[Volume, Segmentation], tmp_path: Path) -> None:
    ct, seg = sts
    raw = segment_mesh(seg, 1, smoothing=False)
    # the closed surface encloses the mask's volume to within the half-voxel rim
    vox_mm3 = seg.voxel_volume_ml() * 1000 * int(seg.mask(1).sum())
    assert raw.signed_volume_mm3() == pytest.approx(vox_mm3, rel=0.08)
    kji = np.argwhere(seg.mask(1))
    centres = ct.geometry.index_to_world(kji[:, ::-1])
    lo, hi = raw.vertices.min(axis=0), raw.vertices.max(axis=0)
    half = np.asarray(ct.geometry.spacing) / 2
    assert np.allclose(lo, centres.min(axis=0) - half, atol=1e-6)
    assert np.allclose(hi, centres.max(axis=0) + half, atol=1e-6)
    # smoothing (what the 3D view shows and the files hold) moves vertices, not the volume
    mesh = segment_mesh(seg, 1)
    assert np.array_equal(mesh.faces, raw.faces)
    assert 0.1 < np.linalg.norm(mesh.vertices - raw.vertices, axis=1).mean() < 1.0
    assert mesh.signed_volume_mm3() == pytest.approx(raw.signed_volume_mm3(), rel=0.03)
    paths = export_surfaces(seg, tmp_path / "stl", "stl")
    assert [p.name for p in paths] == ["1_GTV.stl", "2_Dense.stl"]
    tris, _normals = read_stl(paths[0])
    assert np.allclose(tris, mesh.vertices[mesh.faces], atol=1e-4, rtol=0)
    (obj,) = export_surfaces(seg, tmp_path / "s.obj", "obj")
    text = obj.read_text()
    assert text.count("\no ") == 2 and "o GTV" in text


def test_surface_smoothing_equals_vtk_windowed_sinc(sts: tuple[Volume, Segmentation]) -> None:
    """The export's smoothing is VTK's windowed-sinc filter at the 3D view's former settings."""
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkFiltersCore import vtkWindowedSincPolyDataFilter

    from medseg_gui.io.surfaces import PASS_BAND, SMOOTHING_ITERATIONS, windowed_sinc
    from medseg_gui.rendering.surfaces import mesh_polydata

    _, seg = sts
    raw = segment_mesh(seg, 1, smoothing=False)
    vtk_filter = vtkWindowedSincPolyDataFilter()
    vtk_filter.SetInputData(mesh_polydata(raw))
    vtk_filter.SetNumberOfIterations(SMOOTHING_ITERATIONS)
    vtk_filter.SetPassBand(PASS_BAND)
    vtk_filter.BoundarySmoothingOff()
    vtk_filter.FeatureEdgeSmoothingOff()
    vtk_filter.NonManifoldSmoothingOn()
    vtk_filter.NormalizeCoordinatesOn()
    vtk_filter.Update()
    theirs = vtk_to_numpy(vtk_filter.GetOutput().GetPoints().GetData())
    assert np.abs(windowed_sinc(raw.vertices, raw.faces) - theirs).max() < 1e-9


def test_longest_diameter_and_report(sts: tuple[Volume, Segmentation], tmp_path: Path) -> None:
    ct, seg = sts
    rep = build_report(seg, ct, correction={"edited_voxels": 321, "seconds": 40})
    gtv = rep.segments[0]
    assert gtv.voxels == int(seg.mask(1).sum())
    assert gtv.volume_ml == pytest.approx(gtv.voxels * seg.voxel_volume_ml(), abs=1e-3)
    assert gtv.mean_value == pytest.approx(float(ct.array[seg.mask(1)].mean()), abs=0.01)
    assert gtv.max_value == float(ct.array[seg.mask(1)].max())
    ext = np.asarray(gtv.bbox_lps_max_mm) - np.asarray(gtv.bbox_lps_min_mm)
    assert np.linalg.norm(ext) + 5 > gtv.longest_diameter_mm > ext.max()
    assert gtv.min_value == float(ct.array[seg.mask(1)].min())
    assert gtv.recist_long_mm is not None and gtv.recist_short_mm is not None
    assert gtv.longest_diameter_mm >= gtv.recist_long_mm >= gtv.recist_short_mm > 0
    assert len(gtv.recist_long_lps_mm) == 2 and len(gtv.longest_diameter_lps_mm) == 2
    assert np.linalg.norm(np.subtract(*gtv.recist_long_lps_mm)) == pytest.approx(
        gtv.recist_long_mm, abs=0.01)
    assert rep.models == ["sts-unet:1.2.0"] and rep.study_uid == ct.info.study_uid
    paths = export(ct, seg, "report", tmp_path / "case", correction=rep.correction)
    doc = json.loads(paths[0].read_text())
    assert doc["segments"][0]["name"] == "GTV" and doc["correction"]["edited_voxels"] == 321
    assert paths[1].read_text().startswith("study_uid,label,name")
    cells = next(csv.DictReader(io.StringIO(paths[1].read_text())))
    assert float(cells["recist_long_mm"]) == gtv.recist_long_mm
    assert len(cells["recist_short_lps_mm"].split()) == 6


def _cli(argv: list[str]) -> int:
    from medseg_gui.io.errors import LoadError as Err

    parser = argparse.ArgumentParser(prog="medseg")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except Err as exc:
        print(f"medseg: error: {exc}")
        return 2


@pytest.mark.parametrize(("fmt", "name"), [
    ("nifti", "m.nii.gz"), ("seg-nrrd", "m.seg.nrrd"), ("dicom-seg", "seg.dcm"),
    ("rtstruct", "rs.dcm"), ("stl", "surfaces"), ("report", "report"),
])
def test_cli_export_every_format(sts: tuple[Volume, Segmentation], tmp_path: Path,
                                 shared_data: Path, fmt: str, name: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    ct, seg = sts
    mask = write_label_nifti(seg, tmp_path / "in.nii.gz")
    study = str(shared_data / "ibsi_sts/dicom/STS_008/CT/image")
    argv = ["export", study, "--mask", str(mask), "--format", fmt, "-o", str(tmp_path / name)]
    assert _cli(argv) == 0
    assert "wrote" in capsys.readouterr().out
    if fmt in ("nifti", "seg-nrrd", "dicom-seg", "rtstruct"):
        back = load_mask(tmp_path / name, ct)  # reopens on the study grid
        tol = 0 if fmt != "rtstruct" else 1
        for s in seg.segments:
            if tol:
                assert dice(back.mask(s.label), seg.mask(s.label)) >= 0.95
            else:
                assert np.array_equal(back.mask(s.label), seg.mask(s.label))
    if fmt in ("nifti", "dicom-seg", "report"):  # a second run refuses to overwrite
        assert _cli(argv) == 2
        assert "exists" in capsys.readouterr().out
        assert _cli([*argv, "--force"]) == 0


def test_cli_refuses_mask_on_other_grid(shared_data: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    other = shared_data / "ibsi_sts/nifti/STS_001/CT_mask.nii.gz"
    study = str(shared_data / "ibsi_sts/dicom/STS_008/CT/image")
    code = _cli(["export", study, "--mask", str(other), "--format", "nifti",
                 "-o", str(tmp_path / "x.nii.gz")])
    assert code == 2 and "not the study's grid" in capsys.readouterr().out
    assert not (tmp_path / "x.nii.gz").exists()
