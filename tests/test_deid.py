"""De-identification: no identifying source value reaches any byte under the queue folder."""

from __future__ import annotations

import gzip
import os
import stat
import struct
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medseg_gui.core.paths import config_dir, data_dir
from medseg_gui.training.deid import (
    deidentify_headers,
    deidentify_study,
    identifying_values,
    site_secret,
)
from medseg_gui.training.queue import TrainingQueue
from medseg_gui.training.queue_commands import queue_study

SECRET = "0123456789abcdef" * 4
pytestmark = pytest.mark.filterwarnings("ignore:The value length:UserWarning")


def _headers(folder: Path) -> list[pydicom.Dataset]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return [pydicom.dcmread(f, stop_before_pixels=True)
                for f in sorted(folder.iterdir()) if f.suffix == ".dcm"]


def _forbidden(headers: list[pydicom.Dataset]) -> set[str]:
    """Identifying values, plus dates in ISO form and every private string value."""
    values: set[str] = set()
    for ds in headers:
        values |= identifying_values(ds)
        for el in ds.iterall():
            if el.tag.is_private and el.VR in ("LO", "SH", "LT", "ST", "UT") and el.value:
                text = str(el.value).strip()
                if len(text) >= 4 and not text.startswith(("GEMS", "GEIIS", "CTP")):
                    values.add(text)
    for v in list(values):
        if len(v) == 8 and v.isdigit() and v.startswith(("19", "20")):
            values.add(f"{v[:4]}-{v[4:6]}-{v[6:]}")
    return values


def _scan(root: Path, forbidden: set[str]) -> list[str]:
    """Search every file under ``root`` (gzip content decompressed too), case-insensitively.

    Values shorter than 6 characters ("049Y") would match compressed or voxel bytes by chance,
    so in NIfTI files they are searched in the header and extensions only (before vox_offset).
    """
    needles = [v.lower().encode() for v in forbidden]
    hits, scanned = [], 0
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        raw = path.read_bytes()
        blobs = [(raw, ".nii" not in path.name)]
        if raw[:2] == b"\x1f\x8b":
            blobs.append((gzip.decompress(raw), False))
        if ".nii" in path.name:
            data = blobs[-1][0]
            blobs.append((data[: int(struct.unpack("<f", data[108:112])[0])], True))
        for blob, all_needles in blobs:
            low = blob.lower()
            hits += [f"{path.relative_to(root)}: {n.decode()}" for n in needles
                     if (all_needles or len(n) >= 6) and n in low]
        scanned += 1
    assert scanned >= 5
    return hits


def _scan_queue(q: TrainingQueue, forbidden: set[str]) -> None:
    assert {p.name for p in q.root.iterdir()} >= {"queue.sqlite", "queue.sqlite-wal", "cases"}
    assert _scan(q.root, forbidden) == []


def test_sts_dicom_study_leaves_no_identifier_in_queue(shared_data: Path) -> None:
    study = shared_data / "ibsi_sts" / "dicom" / "STS_008" / "CT" / "image"
    mask = shared_data / "ibsi_sts" / "nifti" / "STS_008" / "CT_mask.nii.gz"
    headers = _headers(study)
    forbidden = _forbidden(headers)
    # the source really carries identifiers, so the scan has something to find
    assert {"STS_008", headers[0].StudyInstanceUID, headers[0].SOPInstanceUID,
            "20010902", "1425673519431881", "IBSI_1_STS_008_CT"} <= forbidden
    q = TrainingQueue()
    item = queue_study(study, mask, draft=mask, model_ref="sts-tumour:1.0.0",
                       annotator="reader-1", any_status=True, queue=q)
    assert item.patient and item.patient != "STS_008"
    assert item.effort.dice_draft_vs_corrected == 1.0
    _scan_queue(q, forbidden)  # while open: the WAL holds the new row
    meta = q.items()[0]
    q.close()
    assert _scan(q.root, forbidden) == []
    metadata = (meta.folder / "meta.json").read_text()
    for absent in ("PatientSex", "PatientAge", "StudyDate", "Description"):
        assert absent not in metadata
    assert meta.image_file.stat().st_size > 1000


def test_crlm_study_with_age_and_private_tags(shared_data: Path) -> None:
    study = shared_data / "crlm_unlabeled" / "CRLM-CT-1006" / "image"
    headers = _headers(study)
    forbidden = _forbidden(headers)
    assert {"CRLM-CT-1006", "049Y", "92038273"} <= forbidden
    deid = deidentify_study(study, secret=SECRET)
    assert deid.volume.info.patient_id == deid.patient and deid.volume.source == ""
    with TrainingQueue() as q:
        q.add(deid.volume.array, deid.volume.geometry, np.zeros(deid.volume.shape, np.uint8),
              metadata=deid.metadata, patient=deid.patient)
        _scan_queue(q, forbidden)
    assert len(deid.metadata["sop_instance_uids"]) == len(headers)


def test_pseudonyms_consistent_per_secret(shared_data: Path) -> None:
    sts = shared_data / "ibsi_sts" / "dicom"
    h8, h1 = _headers(sts / "STS_008" / "CT" / "image"), _headers(sts / "STS_001" / "CT" / "image")
    p8a, m8a = deidentify_headers(h8, SECRET)
    p8b, m8b = deidentify_headers(h8[::-1], SECRET)  # another day, another order
    p1, m1 = deidentify_headers(h1, SECRET)
    p8c, m8c = deidentify_headers(h8, "another site's secret " * 3)
    assert p8a == p8b and m8a["study_uid"] == m8b["study_uid"]
    assert sorted(m8a["sop_instance_uids"]) == sorted(m8b["sop_instance_uids"])
    assert p1 != p8a and m1["study_uid"] != m8a["study_uid"]
    assert p8c != p8a and m8c["study_uid"] != m8a["study_uid"]
    assert h8[0].PatientID == "STS_008"  # the caller's headers are left untouched


def test_site_secret_private_and_outside_the_queue() -> None:
    secret = site_secret()
    path = config_dir() / "deid_secret"
    assert site_secret() == secret and len(secret) == 64
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not path.is_relative_to(data_dir())
    path.write_text("short")
    with pytest.raises(Exception, match="too short"):
        site_secret()


def test_image_file_study_keeps_no_file_name(shared_data: Path) -> None:
    case = shared_data / "ibsi_sts" / "nifti" / "STS_008"
    with TrainingQueue() as q:
        item = queue_study(case / "CT_image.nii.gz", case / "CT_mask.nii.gz", any_status=True,
                           queue=q)
        assert item.patient == ""
        assert _scan(q.root, {"STS_008", str(case)}) == []


def test_scan_finds_planted_identifiers(tmp_path: Path) -> None:
    """The scanner itself works: plain, gzip-compressed and NIfTI-header plants are found."""
    header = bytearray(352)
    header[108:112] = struct.pack("<f", 352.0)
    header[148:152] = b"049Y"  # in the NIfTI 'descrip' field
    (tmp_path / "a.json").write_text('{"x": "sts_008"}')
    (tmp_path / "b.nii.gz").write_bytes(gzip.compress(bytes(header) + b"\0" * 100))
    (tmp_path / "c.sqlite").write_bytes(b"\0" * 50 + b"1.3.6.1.4.1.14519.5.2" + b"\0")
    for name in ("d", "e"):
        (tmp_path / name).write_bytes(b"nothing")
    hits = _scan(tmp_path, {"STS_008", "049Y", "1.3.6.1.4.1.14519.5.2"})
    assert sorted(hits) == ["a.json: sts_008", "b.nii.gz: 049y", "c.sqlite: 1.3.6.1.4.1.14519.5.2"]
