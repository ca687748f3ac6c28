"""DICOM RTSTRUCT export: each segment as closed planar contours in LPS mm, written with pydicom.

Contours are traced per slice with marching squares (``skimage.measure.find_contours`` at level
0.5 on the zero-padded mask), so each polygon runs half-way between voxel centres inside and
outside the segment; an importer that fills voxels whose centre lies inside (the convention of
:mod:`medseg_gui.io.rtstruct` and most planning systems) gets the mask back up to diagonal
corner cases. Holes become inner contours, to be combined even-odd as importers do. Collinear
points are dropped (a lossless simplification). Each contour references the CT slice it lies on,
so the source images are required, as for DICOM SEG.
"""

from __future__ import annotations

import datetime
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from skimage.measure import approximate_polygon, find_contours

from medseg_gui import __version__
from medseg_gui.core.segmentation import Segment, Segmentation
from medseg_gui.io.dicom_seg import clip_vr_lengths, slice_index_of, source_headers
from medseg_gui.io.errors import LoadError
from medseg_gui.io.output import atomic_output

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
_STUDY_COPY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
               "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
               "StudyDescription", "FrameOfReferenceUID", "PositionReferenceIndicator")


def _ds(value: float) -> str:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def slice_contours(mask: np.ndarray[Any, Any]) -> list[np.ndarray[Any, Any]]:
    """Closed contours of a 2D boolean mask as ``(n, 2)`` arrays of ``(i, j)`` indices."""
    padded = np.pad(mask.astype(np.float32), 1)
    out = []
    for c in find_contours(padded, 0.5):  # type: ignore[no-untyped-call]
        # closed contours repeat their first point last: drop it
        c = approximate_polygon(c, tolerance=0.0)[:-1] - 1.0  # type: ignore[no-untyped-call]
        if len(c) >= 3:
            out.append(c[:, ::-1])  # (row, col) -> (i, j)
    return out


def _image_ref(ds: Dataset) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = ds.SOPClassUID
    ref.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    return ref


def _roi_contour(seg: Segmentation, s: Segment, number: int,
                 by_slice: dict[int, Dataset]) -> Dataset:
    item = Dataset()
    item.ROIDisplayColor = [int(c) for c in s.color]
    item.ReferencedROINumber = number
    contours = []
    present = (seg.labelmap == s.label).reshape(seg.geometry.shape[0], -1).any(axis=1)
    for k in np.flatnonzero(present):
        for ij in slice_contours(seg.labelmap[k] == s.label):
            ijk = np.column_stack([ij, np.full(len(ij), float(k))])
            xyz = seg.geometry.index_to_world(ijk)
            c = Dataset()
            c.ContourImageSequence = DicomSequence([_image_ref(by_slice[int(k)])])
            c.ContourGeometricType = "CLOSED_PLANAR"
            c.NumberOfContourPoints = len(xyz)
            c.ContourData = [_ds(v) for v in xyz.ravel()]
            contours.append(c)
    if contours:
        item.ContourSequence = DicomSequence(contours)
    return item


def build_rtstruct(seg: Segmentation, sources: Sequence[Path | Dataset], *,
                   label: str = "medseg") -> Dataset:
    """An RT Structure Set dataset with one ROI per segment, referencing ``sources``.

    Raises
    ------
    LoadError
        No segments, a source image off the grid, or mask voxels on a slice with no source.
    """
    if not seg.segments:
        raise LoadError("segmentation", "nothing to export: the segment table is empty")
    dsets = source_headers(sources)
    by_slice = {slice_index_of(d, seg.geometry): d for d in dsets}
    covered = np.zeros(seg.geometry.shape[0], bool)
    covered[list(by_slice)] = True
    if seg.labelmap[~covered].any():
        raise LoadError("segmentation", "mask voxels lie on slices with no source image")
    first = dsets[0]
    now = datetime.datetime.now()
    ds = Dataset()
    with warnings.catch_warnings():  # over-long values are reported by clip_vr_lengths
        warnings.simplefilter("ignore", UserWarning)
        for kw in _STUDY_COPY:
            setattr(ds, kw, first.get(kw, ""))
    ds.SpecificCharacterSet = first.get("SpecificCharacterSet", "ISO_IR 100")
    ds.SOPClassUID = RTSTRUCT_SOP_CLASS
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 301
    ds.SeriesDescription = "Structure set"
    ds.InstanceNumber = 1
    ds.OperatorsName = ""
    ds.Manufacturer = "medseg-gui"
    ds.ManufacturerModelName = "medseg-gui"
    ds.SoftwareVersions = __version__
    ds.StructureSetLabel = label[:16]
    ds.StructureSetDate = ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.StructureSetTime = ds.InstanceCreationTime = now.strftime("%H%M%S")
    series = Dataset()
    series.SeriesInstanceUID = first.SeriesInstanceUID
    series.ContourImageSequence = DicomSequence([_image_ref(by_slice[k]) for k in sorted(by_slice)])
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management (retired)
    study.ReferencedSOPInstanceUID = first.StudyInstanceUID
    study.RTReferencedSeriesSequence = DicomSequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = first.FrameOfReferenceUID
    frame.RTReferencedStudySequence = DicomSequence([study])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([frame])
    rois, contours, observations = [], [], []
    for number, s in enumerate(seg.segments, start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = first.FrameOfReferenceUID
        roi.ROIName = s.name[:64]
        roi.ROIGenerationAlgorithm = s.source.value
        if s.model:
            roi.ROIGenerationDescription = f"model {s.model}"[:64]
        rois.append(roi)
        contours.append(_roi_contour(seg, s, number, by_slice))
        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.RTROIInterpretedType = "GTV" if s.type.value == "108369006" else ""
        obs.ROIInterpreter = ""
        observations.append(obs)
    ds.StructureSetROISequence = DicomSequence(rois)
    ds.ROIContourSequence = DicomSequence(contours)
    ds.RTROIObservationsSequence = DicomSequence(observations)
    ds.ApprovalStatus = "UNAPPROVED"
    clip_vr_lengths(ds)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


def write_rtstruct(seg: Segmentation, sources: Sequence[Path | Dataset], path: str | Path, *,
                   overwrite: bool = False) -> Path:
    """Write ``seg`` as an RTSTRUCT file (atomically) referencing ``sources``."""
    ds = build_rtstruct(seg, sources)
    with atomic_output(path, overwrite=overwrite) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return Path(path)
