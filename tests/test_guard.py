"""The intended-use guard on real CT: no shared sarcoma is flagged, other body regions are, and
``medseg segment`` and the inference worker act on it (exit 3 / ``OUTSIDE_USE``, nothing written
unless forced)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from medseg_gui.core.volume import StudyInfo, Volume
from medseg_gui.inference.guard import (
    IntendedUse,
    air_margin,
    check_result,
    check_study,
    intended_use,
    measure_study,
    warning_line,
)
from medseg_gui.inference.models import DEFAULT_PROMPT_MODEL, resolve_model
from medseg_gui.io.loader import load_volume


@pytest.fixture(scope="module")
def use() -> IntendedUse:
    found = intended_use(resolve_model())
    assert found is not None
    return found


@pytest.fixture(scope="module")
def lung(shared_data: Path) -> Volume:
    return load_volume(shared_data / "ibsi_lung" / "dicom" / "image")


def test_the_cards_state_their_intended_use() -> None:
    for version in ("1.0.0", "1.1.0"):
        found = intended_use(resolve_model(f"sts-tumour-unet:{version}"))
        assert found is not None and found.modality == "CT" and "EXTREMITY" in found.body_parts
        assert found.max_cross_section_cm2 and found.max_volume_ml and found.max_air_margin
        # The limits leave room above everything the model was trained on.
        seen = found.trained_on
        assert found.max_cross_section_cm2 > seen["cross_section_cm2"][1]
        assert found.max_volume_ml > seen["tumour_volume_ml"][1]
    assert intended_use(resolve_model(DEFAULT_PROMPT_MODEL)) is None  # any lesion: no guard


def test_no_shared_sarcoma_is_flagged(shared_data: Path, use: IntendedUse) -> None:
    """All 43 sarcoma CTs (28 trained on, 15 never seen) and the DICOM copies, with their
    reference masks as the result."""
    cases = sorted((shared_data / "ibsi_sts" / "nifti").glob("STS_*"))
    assert len(cases) == 43
    for case in cases:
        volume = load_volume(case / "CT_image.nii.gz")
        assert check_study(volume, use) == [], case.name
        mask = load_volume(case / "CT_mask.nii.gz").array
        assert check_result(volume, mask, use) == [], case.name
    for case in sorted((shared_data / "ibsi_sts" / "dicom").glob("STS_*")):
        volume = load_volume(case)
        assert volume.info.body_part == "EXTREMITY"  # read from BodyPartExamined
        assert check_study(volume, use) == [], case.name


def test_chest_abdomen_and_trunk_studies_are_flagged(shared_data: Path, use: IntendedUse,
                                                     lung: Volume) -> None:
    reasons = check_study(lung, use)  # a lung-tumour crop: the ribs give it away
    assert len(reasons) == 1 and "bone sections" in reasons[0]
    for study in [*sorted((shared_data / "crlm_unlabeled").glob("CRLM-*")),
                  shared_data / "totalseg_example" / "example_ct_dicom"]:
        reasons = check_study(load_volume(study), use)
        assert reasons, study
        assert any("cm² in cross-section" in r or "bone sections" in r for r in reasons)
    line = warning_line("sts-tumour-unet:1.1.0", use, reasons)
    assert line.startswith("outside what sts-tumour-unet:1.1.0 was trained for (CT of the limbs)")
    assert "\n" not in line


def test_body_part_modality_and_units(shared_data: Path, use: IntendedUse) -> None:
    limb = load_volume(shared_data / "ibsi_sts" / "dicom" / "STS_008")

    def info(**changes: str) -> Volume:
        return dataclasses.replace(limb, info=dataclasses.replace(limb.info, **changes))

    assert check_study(info(body_part="LOWER LIMB"), use) == []
    assert check_study(info(body_part="WHOLEBODY"), use) == []  # generic: the image decides
    chest = check_study(info(body_part="CHEST"), use)
    assert chest == ["DICOM BodyPartExamined is CHEST, not the limbs"]
    assert check_study(info(modality="MR"), use)[0] == "the modality is MR, not CT"
    shifted = Volume(limb.array.astype(np.int32) + 1024, limb.geometry, StudyInfo())
    assert "Hounsfield" in check_study(shifted, use)[0]  # not in HU (or MR in a NIfTI)


def test_results_larger_than_trained_or_in_lung_are_flagged(lung: Volume,
                                                            use: IntendedUse) -> None:
    # A ball of lung parenchyma: the mask lies in air-filled tissue, as no sarcoma does.
    parenchyma = ndimage.binary_erosion(lung.array < -700, iterations=12)
    k, j, i = (int(v[len(v) // 2]) for v in np.nonzero(parenchyma))
    kk, jj, ii = np.ogrid[:lung.array.shape[0], :lung.array.shape[1], :lung.array.shape[2]]
    sz, sy, sx = lung.geometry.spacing[2], lung.geometry.spacing[1], lung.geometry.spacing[0]
    ball = ((kk - k) * sz) ** 2 + ((jj - j) * sy) ** 2 + ((ii - i) * sx) ** 2 <= 8.0 ** 2
    margin = air_margin(lung, ball)
    assert margin is not None and margin > 0.9
    reasons = check_result(lung, ball, use)
    assert len(reasons) == 1 and "air or lung" in reasons[0]
    # 2.6 L of "tumour": more than any training tumour, and the limit.
    big = np.zeros(lung.array.shape, bool)
    big[:, :180, :180] = True  # 60 x 180 x 180 voxels of 0.98 x 0.98 x 3 mm
    assert any("mL, larger than any" in r for r in check_result(lung, big, use))
    assert check_result(lung, np.zeros(lung.array.shape, np.uint8), use) == []
    assert air_margin(lung, np.zeros(lung.array.shape, bool)) is None


def test_measures_are_cheap_and_in_range(lung: Volume) -> None:
    m = measure_study(lung)
    assert 250 < m.cross_section_cm2 < 400 and m.bone_sections == 8 and m.lowest_hu < -900


def _medseg(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "medseg_gui.cli", *args], capture_output=True,
                          text=True, timeout=600)


def test_cli_warns_exits_3_and_writes_nothing_unless_forced(shared_data: Path,
                                                            tmp_path: Path) -> None:
    study, out = shared_data / "ibsi_lung" / "dicom" / "image", tmp_path / "lung.nii.gz"
    run = _medseg("segment", str(study), "-o", str(out))
    assert run.returncode == 3, run.stderr
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"medseg: warning: {study}: outside what")
    assert "--force" in lines[0] and "Traceback" not in run.stderr
    assert not out.exists()
    forced = _medseg("segment", str(study), "-o", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    assert "segmented anyway (--force)" in forced.stderr and out.is_file()


def test_worker_stops_before_the_model_runs_unless_confirmed(lung: Volume) -> None:
    from medseg_gui.core.jobs import JobStatus
    from medseg_gui.inference.worker import InferenceWorker

    card = resolve_model()
    worker = InferenceWorker()
    try:
        job = worker.wait(worker.submit(lung, card.folder, backend="onnxruntime", device="cpu"))
        assert job.status is JobStatus.OUTSIDE_USE and job.segmentation is None
        assert job.report["stage"] == "study" and "bone sections" in job.report["outside_use"][0]
        assert job.message.startswith(f"outside what {card.ref}")
        job = worker.wait(worker.submit(lung, card.folder, backend="onnxruntime", device="cpu",
                                        check_use=False))
        assert job.status is JobStatus.DONE and job.segmentation is not None
    finally:
        worker.shutdown()
