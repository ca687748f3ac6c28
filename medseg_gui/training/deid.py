"""De-identification of a study before it reaches the training queue.

DICOM PS3.15's Basic Application Level Confidentiality Profile is applied by ``dicognito`` (a
maintained de-identifier: it remaps names, IDs, UIDs and shifts dates, and it is seeded here by a
per-site secret, so the same patient always gets the same pseudonym and the same UID the same
replacement). The queue then keeps far less than even the de-identified header: the voxels as
NIfTI (no header text at all) and a small metadata dict built from an allow-list of the
de-identified values (pseudonymous patient id, remapped UIDs, modality and acquisition technique).
No dates, ages, sex, descriptions or free text. As a last guard every string of that dict is
checked against the source headers' identifying values and dropped if one occurs in it.

The site secret lives in ``config_dir()/deid_secret`` (mode 0600), never in the queue folder:
whoever holds it can confirm a guessed patient ID against a pseudonym.

Not covered: identifying text burned into the pixels (not expected in CT/MR; screen captures and
ultrasound need the Clean Pixel Data option, which is not implemented).
"""

from __future__ import annotations

import copy
import os
import secrets
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pydicom
from dicognito import __version__ as dicognito_version
from dicognito.anonymizer import Anonymizer
from pydicom.dataset import Dataset, FileMetaDataset

from medseg_gui.core.paths import config_dir
from medseg_gui.core.progress import Progress, check, no_progress, scaled
from medseg_gui.core.volume import StudyInfo, Volume
from medseg_gui.io.dicom_index import choose_image_series, index_folder, read_header
from medseg_gui.io.dicom_series import load_series
from medseg_gui.io.errors import LoadError
from medseg_gui.io.imagefile import image_suffix, read_image

PROFILE = "DICOM PS3.15 Basic Application Level Confidentiality Profile (DCM 113100)"

#: Attributes whose source values must never reach the queue (PS3.15 Table E.1-1, the ones
#: CT/MR headers carry in practice); :func:`identifying_values` collects them for checks.
IDENTIFYING_KEYWORDS = (
    "PatientName", "PatientID", "OtherPatientIDs", "OtherPatientNames", "PatientBirthDate",
    "PatientBirthTime", "PatientBirthName", "PatientMotherBirthName", "PatientAddress",
    "PatientTelephoneNumbers", "PatientAge", "MedicalRecordLocator", "EthnicGroup",
    "AdditionalPatientHistory", "PatientComments", "StudyInstanceUID", "SeriesInstanceUID",
    "SOPInstanceUID", "FrameOfReferenceUID", "MediaStorageSOPInstanceUID", "AccessionNumber",
    "StudyID", "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate",
    "InstanceCreationDate", "AcquisitionDateTime", "StudyTime", "SeriesTime", "AcquisitionTime",
    "ContentTime", "InstanceCreationTime", "InstitutionName", "InstitutionAddress",
    "InstitutionalDepartmentName", "ReferringPhysicianName", "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy", "OperatorsName", "RequestingPhysician", "StationName",
    "DeviceSerialNumber", "StudyDescription", "SeriesDescription", "ProtocolName",
    "RequestedProcedureDescription", "PerformedProcedureStepDescription", "ImageComments",
)

# Values kept from the de-identified header (none is on the profile's remove/replace list).
_TECHNIQUE = ("Modality", "BodyPartExamined", "Manufacturer", "ManufacturerModelName",
              "ConvolutionKernel", "KVP", "SliceThickness")
_MIN_LEN = 3  # shorter source values ("F", "CT") are too common to be identifying


@dataclass(frozen=True)
class DeidStudy:
    """A de-identified study, ready for :meth:`TrainingQueue.add`.

    Attributes
    ----------
    volume
        The voxels; ``info`` holds only pseudonymous ids and ``source`` is empty.
    patient
        Pseudonymous patient id (empty when the input had no DICOM header).
    metadata
        De-identified metadata (JSON-ready).
    """

    volume: Volume
    patient: str
    metadata: dict[str, Any]


def site_secret(path: str | Path | None = None) -> str:
    """The site's de-identification secret, created (0600) on first use.

    Parameters
    ----------
    path
        Secret file; default ``config_dir()/deid_secret``.
    """
    p = Path(path) if path is not None else config_dir() / "deid_secret"
    if not p.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
        try:  # O_EXCL: two processes creating it at once agree on the first one's secret
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
                f.flush()
                os.fsync(f.fileno())
        except FileExistsError:
            pass
    secret = p.read_text().strip()
    if len(secret) < 32:
        raise LoadError(p, "de-identification secret is empty or too short; restore it "
                        "from backup (a new one would give every patient new pseudonyms)")
    return secret


def identifying_values(ds: Dataset) -> set[str]:
    """Non-empty source values of :data:`IDENTIFYING_KEYWORDS` (names also split in parts)."""
    found: set[str] = set()
    datasets = [ds] + ([ds.file_meta] if getattr(ds, "file_meta", None) is not None else [])
    for d in datasets:
        for kw in IDENTIFYING_KEYWORDS:
            value = d.get(kw)
            values = value if isinstance(value, pydicom.multival.MultiValue) else [value]
            for v in values:
                text = "" if v is None else str(v).strip()
                parts = {text, *text.replace("=", "^").split("^")}
                found |= {t.strip() for t in parts if len(t.strip()) >= _MIN_LEN}
    return found


def _contains_any(text: str, forbidden: Iterable[str]) -> bool:
    low = text.lower()
    return any(f.lower() in low for f in forbidden)


def _scrub(value: Any, forbidden: set[str]) -> Any:
    """Drop strings (in nested dicts/lists) that contain a forbidden value."""
    if isinstance(value, dict):
        out = {k: _scrub(v, forbidden) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None}
    if isinstance(value, list):
        return [_scrub(v, forbidden) for v in value]
    if isinstance(value, str) and _contains_any(value, forbidden):
        return None
    return value


def deidentify_headers(headers: Sequence[Dataset], secret: str) -> tuple[str, dict[str, Any]]:
    """De-identify the headers of one series; return ``(patient pseudonym, metadata)``.

    Parameters
    ----------
    headers
        The series' headers (not modified: each is copied before ``dicognito`` runs on it).
    secret
        The site secret seeding the remapping (:func:`site_secret`).
    """
    anonymizer = Anonymizer(seed=secret)
    forbidden: set[str] = set()
    clean: list[Dataset] = []
    with warnings.catch_warnings():  # pydicom's warnings on over-long values, seen in the wild
        warnings.simplefilter("ignore", UserWarning)
        for header in headers:
            forbidden |= identifying_values(header)
            ds = copy.deepcopy(header)
            if getattr(ds, "file_meta", None) is None:
                ds.file_meta = FileMetaDataset()
            anonymizer.anonymize(ds)
            clean.append(ds)
    if not clean:
        raise ValueError("no headers to de-identify")
    first = clean[0]
    patient = str(first.get("PatientID", "") or "")
    meta: dict[str, Any] = {
        "deidentification": {"profile": PROFILE, "method": f"dicognito {dicognito_version}",
                             "patient_identity_removed": True},
        "patient": patient,
        "study_uid": str(first.get("StudyInstanceUID", "")),
        "series_uid": str(first.get("SeriesInstanceUID", "")),
        "frame_of_reference_uid": str(first.get("FrameOfReferenceUID", "")),
        "sop_instance_uids": [str(ds.get("SOPInstanceUID", "")) for ds in clean],
    }
    for kw in _TECHNIQUE:
        value = first.get(kw)
        if value is not None and str(value).strip():
            meta[kw] = str(value).strip()
    scrubbed: dict[str, Any] = _scrub(meta, forbidden)
    if _contains_any(patient, forbidden):  # never expected from dicognito, but never pass it on
        patient = ""
    return patient, scrubbed


def _strip(volume: Volume, info: StudyInfo) -> Volume:
    return replace(volume, info=info, source="", warnings=())


def deidentify_study(path: str | Path, *, series_uid: str | None = None,
                     secret: str | None = None, progress: Progress = no_progress) -> DeidStudy:
    """Load a study and de-identify it.

    Parameters
    ----------
    path
        A DICOM folder or file (headers are de-identified), or a NIfTI/NRRD/MHA image (it has
        no identifying header; its file name is not kept either).
    series_uid
        Which series to use when a DICOM folder holds several.
    secret
        Site secret; default :func:`site_secret`.
    progress
        Progress/cancel callback.

    Raises
    ------
    LoadError
        The study cannot be read.
    """
    p = Path(path)
    if image_suffix(p) and p.is_file():
        volume = read_image(p)
        plain: dict[str, Any] = {
            "deidentification": {"profile": PROFILE, "method": "image file without header"},
            "patient": "", "Modality": volume.modality}
        return DeidStudy(_strip(volume, StudyInfo(modality=volume.modality)), "", plain)
    if not p.exists():
        raise LoadError(p, "no such file or folder")
    folder = p if p.is_dir() else p.parent
    if p.is_file():
        header = read_header(p)
        if not isinstance(header, Dataset):
            raise LoadError(p, header or "not a DICOM file and not a NIfTI/NRRD/MHA image")
        series_uid = series_uid or str(header.get("SeriesInstanceUID", ""))
    headers = []
    with warnings.catch_warnings():  # pydicom's warnings on over-long values, seen in the wild
        warnings.simplefilter("ignore", UserWarning)
        index = index_folder(folder, scaled(progress, 0.0, 0.2))
        series = choose_image_series(index, series_uid)
        volume = load_series(series.files, headers=series.headers,
                             progress=scaled(progress, 0.2, 0.8), source=folder)
        for n, f in enumerate(series.files):
            check(progress, 0.8 + 0.2 * n / len(series.files), "de-identifying headers")
            headers.append(pydicom.dcmread(f, stop_before_pixels=True))
    patient, meta = deidentify_headers(headers, secret if secret is not None else site_secret())
    info = StudyInfo(patient_id=patient, study_uid=meta.get("study_uid", ""),
                     series_uid=meta.get("series_uid", ""),
                     frame_of_reference_uid=meta.get("frame_of_reference_uid", ""),
                     modality=str(meta.get("Modality", "")))
    return DeidStudy(_strip(volume, info), patient, meta)
