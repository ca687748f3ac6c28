"""Index a folder of DICOM files into patients, studies and series by reading headers only.

Only the tags the browser and the loader need are parsed (``specific_tags``) and pixel data is
never read; the headers are kept so that loading a series need not parse its files again. Files
that are not DICOM are counted and skipped; unreadable DICOM files are listed with their problem
so the browser can say why a series is short.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from medseg_gui.core.progress import Progress, check, no_progress
from medseg_gui.io.errors import LoadError

_TAGS = [
    "PatientID", "PatientName", "StudyInstanceUID", "StudyDate", "StudyDescription",
    "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "Modality", "SOPClassUID",
    "SOPInstanceUID", "Rows", "Columns", "ImageOrientationPatient", "NumberOfFrames",
    "FrameOfReferenceUID", "InstanceNumber", "BodyPartExamined",
    # what loading a slice needs besides its pixels, so that loading need not parse it again
    "ImagePositionPatient", "PixelSpacing", "RescaleSlope", "RescaleIntercept",
    "BitsAllocated", "BitsStored", "PixelRepresentation", "SamplesPerPixel",
    "PhotometricInterpretation", "SpacingBetweenSlices", "SliceThickness",
]

# Storage classes whose instances are images a Volume can be built from.
_NON_IMAGE_MODALITIES = {"RTSTRUCT", "SEG", "SR", "RTPLAN", "RTDOSE", "PR", "KO", "REG"}
# Masks a user may take for a study (a SEG even has frames of pixels): what they are, and
# where they belong instead.
_MASK_KINDS = {"SEG": "a DICOM SEG (segmentation)", "RTSTRUCT": "a DICOM RTSTRUCT (contours)"}
_MASK_HINT = "open it with --labels on its CT"


def non_image_reason(modality: str) -> str | None:
    """Why a DICOM object of ``modality`` is no study to open (``None`` for images): for a SEG
    ``"a DICOM SEG (segmentation), not an image series; open it with --labels on its CT"``."""
    if modality in _MASK_KINDS:
        return f"{_MASK_KINDS[modality]}, not an image series; {_MASK_HINT}"
    if modality in _NON_IMAGE_MODALITIES:
        return f"a DICOM {modality} object, not an image series"
    return None


@dataclass
class SeriesEntry:
    """One loadable series (or non-image object group) of a study.

    Instances sharing a SeriesInstanceUID but differing in orientation or matrix size (a scout
    stored with the axial series, say) are split into separate entries, ``part`` 1, 2, ...
    """

    series_uid: str
    modality: str
    description: str
    number: int | None
    frame_of_reference_uid: str
    rows: int
    columns: int
    files: list[Path] = field(default_factory=list)
    headers: list[Dataset] = field(default_factory=list, repr=False)
    frames: int = 0
    part: int = 1

    @property
    def is_image(self) -> bool:
        return self.rows > 0 and self.modality not in _NON_IMAGE_MODALITIES

    @property
    def label(self) -> str:
        text = f"{self.modality} #{self.number if self.number is not None else '?'} "
        text += self.description or "(no description)"
        return text + (f" (part {self.part})" if self.part > 1 else "")


@dataclass
class StudyEntry:
    study_uid: str
    date: str
    description: str
    series: list[SeriesEntry] = field(default_factory=list)


@dataclass
class PatientEntry:
    patient_id: str
    name: str
    studies: list[StudyEntry] = field(default_factory=list)


@dataclass
class DicomIndex:
    """The patients/studies/series found under ``root``, plus what was skipped and why."""

    root: Path
    patients: list[PatientEntry] = field(default_factory=list)
    skipped_non_dicom: int = 0
    unreadable: list[tuple[Path, str]] = field(default_factory=list)

    def all_series(self) -> Iterator[tuple[PatientEntry, StudyEntry, SeriesEntry]]:
        for p in self.patients:
            for st in p.studies:
                for se in st.series:
                    yield p, st, se

    def image_series(self) -> list[SeriesEntry]:
        return [se for _, _, se in self.all_series() if se.is_image]

    def find(self, series_uid: str) -> SeriesEntry:
        matches = [se for se in self.image_series() if se.series_uid == series_uid]
        if not matches:
            raise LoadError(self.root, f"no image series with UID {series_uid}")
        return matches[0]


def _list_files(root: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The files below ``root``, and the entries that cannot even be asked whether they are
    files (a symbolic-link loop), with the reason."""
    out: list[Path] = []
    broken: list[tuple[Path, str]] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            raise LoadError(folder, f"cannot list folder: {exc.strerror}") from exc
        for e in entries:
            if e.name.startswith(".") or e.name.upper() == "DICOMDIR":
                continue
            try:
                if e.is_dir(follow_symlinks=False):
                    stack.append(Path(e.path))
                elif e.is_file():
                    out.append(Path(e.path))
            except OSError as exc:
                broken.append((Path(e.path), f"cannot open ({exc.strerror or exc})"))
    return sorted(out), broken


def read_header(path: Path) -> Dataset | str | None:
    """The indexing tags of one file; ``None`` if it is not DICOM, a message if it is broken."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
    except InvalidDicomError:
        return None
    except Exception as exc:  # pydicom raises many types on truncated or corrupt files
        return f"unreadable DICOM header ({type(exc).__name__}: {exc})"


def _orientation_key(ds: Dataset) -> tuple[float, ...]:
    iop = ds.get("ImageOrientationPatient")
    return tuple(round(float(v), 3) for v in iop) if iop is not None else ()


def index_folder(folder: str | Path, progress: Progress = no_progress) -> DicomIndex:
    """Index every DICOM file below ``folder`` (recursively), reading headers only.

    Parameters
    ----------
    folder
        A folder (or a single file, which indexes that file alone).
    progress
        Progress/cancel callback; cancelling raises :class:`~medseg_gui.core.progress.Cancelled`.

    Raises
    ------
    LoadError
        The folder does not exist or cannot be listed.
    """
    root = Path(folder)
    if not root.exists():
        raise LoadError(root, "no such file or folder")
    files, broken = ([root], []) if root.is_file() else _list_files(root)
    index = DicomIndex(root=root, unreadable=broken)
    groups: dict[tuple[str, str, tuple[float, ...], int, int], list[tuple[Path, Dataset]]] = {}
    frames: dict[tuple[str, str, tuple[float, ...], int, int], int] = {}
    check(progress, 0.0, f"Indexing {len(files)} files")
    # Sequential on purpose: pydicom's parsing holds the GIL, and threads measured slower.
    for n, path in enumerate(files):
        if n % 64 == 0:
            check(progress, n / max(1, len(files)), f"Indexing {n}/{len(files)} files")
        ds = read_header(path)
        if ds is None:
            index.skipped_non_dicom += 1
            continue
        if isinstance(ds, str):
            index.unreadable.append((path, ds))
            continue
        if "SeriesInstanceUID" not in ds or "StudyInstanceUID" not in ds:
            index.unreadable.append((path, "DICOM file without study/series UID"))
            continue
        key = (
            str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), _orientation_key(ds),
            int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0),
        )
        groups.setdefault(key, []).append((path, ds))
        frames[key] = frames.get(key, 0) + int(ds.get("NumberOfFrames", 1) or 1)
    _build_tree(index, groups, frames)
    check(progress, 1.0, f"Indexed {len(files)} files")
    return index


def _build_tree(
    index: DicomIndex,
    groups: dict[tuple[str, str, tuple[float, ...], int, int], list[tuple[Path, Dataset]]],
    frames: dict[tuple[str, str, tuple[float, ...], int, int], int],
) -> None:
    patients: dict[str, PatientEntry] = {}
    studies: dict[str, StudyEntry] = {}
    parts: dict[str, int] = {}
    # Biggest group of a split series first, so part 1 is the main series.
    for key, members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        members.sort(key=lambda m: m[0])
        ds = members[0][1]
        pid = str(ds.get("PatientID", ""))
        if pid not in patients:
            patients[pid] = PatientEntry(pid, str(ds.get("PatientName", "")))
            index.patients.append(patients[pid])
        study_uid = key[0]
        if study_uid not in studies:
            studies[study_uid] = StudyEntry(
                study_uid, str(ds.get("StudyDate", "")), str(ds.get("StudyDescription", ""))
            )
            patients[pid].studies.append(studies[study_uid])
        parts[key[1]] = parts.get(key[1], 0) + 1
        number = ds.get("SeriesNumber")
        studies[study_uid].series.append(
            SeriesEntry(
                series_uid=key[1],
                modality=str(ds.get("Modality", "")),
                description=str(ds.get("SeriesDescription", "")),
                number=int(number) if number not in (None, "") else None,
                frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "")),
                rows=key[3],
                columns=key[4],
                files=[m[0] for m in members],
                headers=[m[1] for m in members],
                frames=frames[key],
                part=parts[key[1]],
            )
        )
    for st in studies.values():
        st.series.sort(key=lambda s: (s.number if s.number is not None else 1 << 30, s.part))


def describe(index: DicomIndex) -> dict[str, object]:
    """JSON-ready tree of the index, for ``medseg info`` on a folder."""
    return {
        "root": str(index.root),
        "patients": [
            {
                "patient_id": p.patient_id,
                "studies": [
                    {
                        "study_uid": st.study_uid,
                        "date": st.date,
                        "description": st.description,
                        "series": [
                            {
                                "series_uid": se.series_uid,
                                "label": se.label,
                                "modality": se.modality,
                                "files": len(se.files),
                                "frames": se.frames,
                                "size": [se.columns, se.rows],
                            }
                            for se in st.series
                        ],
                    }
                    for st in p.studies
                ],
            }
            for p in index.patients
        ],
        "skipped_non_dicom": index.skipped_non_dicom,
        "unreadable": [[str(p), why] for p, why in index.unreadable],
    }


def no_image_series_reason(index: DicomIndex) -> str:
    """Why ``index`` offers nothing to open: the masks it holds instead (a folder of DICOM
    SEG files), or the unreadable and non-DICOM files."""
    masks = sorted({se.modality for _, _, se in index.all_series() if se.modality in _MASK_KINDS})
    if masks:
        kinds = " and ".join(_MASK_KINDS[m] for m in masks)
        return f"holds {kinds} but no image series; {_MASK_HINT}"
    why = "no DICOM image series found"
    if index.unreadable:
        path, problem = index.unreadable[0]
        why += f" ({len(index.unreadable)} unreadable files, e.g. {path.name}: {problem})"
    elif index.skipped_non_dicom:
        why += f" ({index.skipped_non_dicom} files are not DICOM)"
    return why


def choose_image_series(index: DicomIndex, series_uid: str | None = None) -> SeriesEntry:
    """The series to load: the one named, or the only image series; otherwise a clear error."""
    if series_uid:
        return index.find(series_uid)
    series: Sequence[SeriesEntry] = index.image_series()
    if not series:
        raise LoadError(index.root, no_image_series_reason(index))
    if len(series) > 1:
        listing = "; ".join(f"{s.label} [{s.series_uid}]" for s in series[:6])
        raise LoadError(
            index.root,
            f"{len(series)} image series found, choose one (--series UID): {listing}",
        )
    return series[0]
