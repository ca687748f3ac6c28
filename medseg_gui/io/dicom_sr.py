"""The measurements of a segmentation as a DICOM SR measurement report (TID 1500), via highdicom.

One Comprehensive 3D SR holds a TID 1500 Imaging Measurement Report with, per non-empty segment,
a TID 1411 volumetric ROI group and, when it has RECIST axes, a TID 1501 measurement group for
them; and a TID 1501 group per ruler of the study. The volumetric group references its segment
in a DICOM SEG (TID 1411 wants a segment, and a segment is only addressable by the SEG's UIDs)
and the CT series it was drawn on; the SR's evidence lists the CT images and the SEG. The
measurements are :mod:`medseg_gui.core.measurements`'s (and the reader's rulers and edited
axes, :mod:`medseg_gui.core.annotations`), coded as

==========================  ===================  ===========  ==========================
measurement                 concept              unit (UCUM)  qualifiers
==========================  ===================  ===========  ==========================
volume                      SCT 118565006        ml
longest 3D diameter         SCT 81827009         mm           derivation SCT Maximum
RECIST long axis            SCT 103339001        mm           method DCM 126081 RECIST 1.1
RECIST short axis           SCT 103340004        mm           method DCM 126081 RECIST 1.1
ruler                       SCT 410668003        mm
mean / min / max HU (CT)    DCM 112031           [hnsf'U]     derivation SCT Mean/Min/Max
==========================  ===================  ===========  ==========================

Lines carry their coordinates: each RECIST axis and each ruler is a TID 300 measurement
"inferred from" an SCOORD3D POLYLINE of its two end points in the CT's frame of reference
(LPS mm). highdicom allows such references only in TID 1501 groups, not in the volumetric group,
which is why the axes have a group of their own; it shares the segment's tracking UID, so both
groups describe the same finding. A computed axis carries the algorithm that measured it
(TID 4019, ``medseg-gui RECIST``); an axis a reader moved has none, and its group's tracking
identifier ends in "(edited)".
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from medseg_gui import __version__
from medseg_gui.core.annotations import Annotations, ReadAxes, Ruler, effective_recist
from medseg_gui.core.measurements import Axis, SegmentMeasurements, measure_segment
from medseg_gui.core.segmentation import Segment, Segmentation
from medseg_gui.core.volume import Volume
from medseg_gui.io.dicom_seg import build_dicom_seg, clip_vr_lengths, source_headers
from medseg_gui.io.errors import LoadError
from medseg_gui.io.output import atomic_output

MILLILITRE = hd.sr.CodedConcept("ml", "UCUM", "milliliter")
# CID 100 names a CT procedure; any other modality gets LOINC's general imaging study.
IMAGING_STUDY = hd.sr.CodedConcept("18748-4", "LN", "Diagnostic imaging study")


def _measurements(m: SegmentMeasurements, ct: bool) -> list[hd.sr.Measurement]:
    out = [hd.sr.Measurement(name=codes.SCT.Volume, value=m.volume_ml, unit=MILLILITRE),
           hd.sr.Measurement(name=codes.SCT.Diameter, value=m.longest_diameter_mm,
                             unit=codes.UCUM.Millimeter, derivation=codes.SCT.Maximum)]
    if ct and m.mean is not None and m.minimum is not None and m.maximum is not None:
        out += [hd.sr.Measurement(name=codes.DCM.AttenuationCoefficient, value=value,
                                  unit=codes.UCUM.HounsfieldUnit, derivation=derivation)
                for derivation, value in ((codes.SCT.Mean, m.mean), (codes.SCT.Minimum, m.minimum),
                                          (codes.SCT.Maximum, m.maximum))]
    return out


def _line(name: hd.sr.CodedConcept | Code, axis: Axis, frame_uid: str, *,
          method: Code | None = None, computed: bool = False) -> hd.sr.Measurement:
    """A length in mm inferred from the POLYLINE between the line's two LPS end points."""
    return hd.sr.Measurement(
        name=name, value=axis.length_mm, unit=codes.UCUM.Millimeter, method=method,
        algorithm_id=hd.sr.AlgorithmIdentification("medseg-gui RECIST", __version__)
        if computed else None,
        referenced_coordinates=[hd.sr.CoordinatesForMeasurement3D(
            graphic_type=hd.sr.GraphicTypeValues3D.POLYLINE,
            graphic_data=np.array([axis.start, axis.end], dtype=np.float64),
            frame_of_reference_uid=frame_uid)])


def _axes_group(s: Segment, axes: ReadAxes, tracking_uid: str, frame_uid: str
                ) -> hd.sr.MeasurementsAndQualitativeEvaluations | None:
    """The TID 1501 group of a segment's RECIST axes (``None`` without any)."""
    lines = [_line(name, axis, frame_uid, method=codes.DCM.RECIST1Point1, computed=edit is None)
             for name, axis, edit in ((codes.SCT.LongAxis, axes.long, axes.long_edit),
                                      (codes.SCT.ShortAxis, axes.short, axes.short_edit))
             if axis is not None]
    if not lines:
        return None
    edited = " (edited)" if axes.edited else ""
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=tracking_uid, identifier=f"{s.label} {s.name}"[:64 - 16 - len(edited)]
            + f" RECIST axes{edited}"),
        finding_type=hd.sr.CodedConcept(s.type.value, s.type.scheme, s.type.meaning),
        finding_category=hd.sr.CodedConcept(s.category.value, s.category.scheme,
                                            s.category.meaning),
        measurements=lines)


def _ruler_group(n: int, ruler: Ruler, frame_uid: str
                 ) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"Ruler {n}"),
        measurements=[_line(codes.SCT.Length, Axis(ruler.start, ruler.end, ruler.length_mm),
                            frame_uid)])


def _seg_numbers(seg: Segmentation, seg_ds: Dataset) -> dict[int, int]:
    """Label -> SegmentNumber of ``seg_ds``, matching segments by name (SegmentLabel)."""
    by_name = {str(it.SegmentLabel): int(it.SegmentNumber) for it in seg_ds.SegmentSequence}
    missing = [s.name for s in seg.segments if s.name not in by_name]
    if missing:
        raise LoadError(getattr(seg_ds, "filename", None) or "SEG",
                        f"the SEG has no segment named {', '.join(map(repr, missing))}")
    return {s.label: by_name[s.name] for s in seg.segments}


def build_measurement_sr(seg: Segmentation, volume: Volume, sources: Sequence[Path | Dataset],
                         seg_ds: Dataset, annotations: Annotations | None = None
                         ) -> hd.sr.Comprehensive3DSR:
    """The SR measuring every non-empty segment of ``seg`` (on ``volume``'s grid), with the
    study's rulers and edited RECIST axes from ``annotations``.

    Parameters
    ----------
    seg, volume
        The mask and the CT it was drawn on (same grid).
    sources
        The CT series' files or headers.
    seg_ds
        A DICOM SEG of ``seg`` on ``sources`` (written with it, or given); segments are matched
        by name.
    annotations
        The study's rulers and axis edits (none when ``None``).

    Raises
    ------
    LoadError
        Another grid, a segment missing from the SEG, or nothing to measure.
    """
    if not volume.geometry.same_grid(seg.geometry, tol=1e-3):
        raise LoadError(volume.source or "volume", "the mask is not on the study's grid")
    numbers = _seg_numbers(seg, seg_ds)
    notes = annotations or Annotations()
    ct = volume.modality.upper() == "CT"
    headers = source_headers(sources)
    frame_uid = str(headers[0].FrameOfReferenceUID)
    series = hd.sr.SourceSeriesForSegmentation(headers[0].SeriesInstanceUID)
    groups: list[hd.sr.MeasurementsAndQualitativeEvaluations
                 | hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations] = []
    for s in seg.segments:
        m = measure_segment(seg, s.label, volume)
        if not m.voxels:
            continue
        tracking = hd.UID()
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=tracking,
                                                         identifier=f"{s.label} {s.name}"[:64]),
            # Built by hand: from_segmentation (highdicom 0.28) misses a SEG whose segment
            # identification is shared by all frames, as it is for one segment.
            referenced_segment=hd.sr.ReferencedSegment(
                sop_class_uid=seg_ds.SOPClassUID, sop_instance_uid=seg_ds.SOPInstanceUID,
                segment_number=numbers[s.label], source_series=series),
            finding_type=hd.sr.CodedConcept(s.type.value, s.type.scheme, s.type.meaning),
            finding_category=hd.sr.CodedConcept(s.category.value, s.category.scheme,
                                                s.category.meaning),
            measurements=_measurements(m, ct)))
        axes = _axes_group(s, effective_recist(s.label, m.recist, notes), tracking, frame_uid)
        if axes is not None:
            groups.append(axes)
    if not groups:
        raise LoadError("segmentation", "nothing to measure: every segment is empty")
    groups += [_ruler_group(n, r, frame_uid) for n, r in enumerate(notes.rulers, start=1)]
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="medseg-gui", manufacturer_name="medseg-gui",
            model_name=f"medseg-gui {__version__}"))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion if ct else IMAGING_STUDY,
        imaging_measurements=groups)
    with warnings.catch_warnings():  # over-long values copied from the CT are clipped below
        warnings.simplefilter("ignore", UserWarning)
        sr = hd.sr.Comprehensive3DSR(
            evidence=[*headers, seg_ds], content=report,
            series_instance_uid=hd.UID(), series_number=301, sop_instance_uid=hd.UID(),
            instance_number=1, manufacturer="medseg-gui", series_description="Measurements",
            is_complete=True, is_final=False, is_verified=False)
    clip_vr_lengths(sr)
    return sr


def write_measurement_sr(seg: Segmentation, volume: Volume, sources: Sequence[Path | Dataset],
                         path: str | Path, *, seg_path: str | Path | None = None,
                         overwrite: bool = False, annotations: Annotations | None = None
                         ) -> list[Path]:
    """Write the SR to ``path`` and the SEG it references; returns the files written.

    Parameters
    ----------
    annotations
        The study's rulers and edited RECIST axes, measured in the SR too.
    seg_path
        An existing DICOM SEG of ``seg`` to reference (nothing else is written); by default a
        SEG is written next to the SR as ``<path stem>.seg.dcm``.
    """
    out = Path(path)
    seg_ds: Dataset
    if seg_path is not None:
        seg_ds = pydicom.dcmread(seg_path, stop_before_pixels=True)
        new_seg = None
    else:
        new_seg = out.with_name(out.name.removesuffix(out.suffix) + ".seg.dcm")
        seg_ds = build_dicom_seg(seg, sources)
    sr = build_measurement_sr(seg, volume, sources, seg_ds, annotations)  # before writing
    for target in (out, new_seg):
        if target is not None and target.exists() and not overwrite:
            raise LoadError(target, "output exists; pass --force (overwrite=True) to replace it")
    written = [out]
    if new_seg is not None:
        with atomic_output(new_seg, overwrite=overwrite) as tmp:
            seg_ds.save_as(tmp, enforce_file_format=True)
        written.append(new_seg)
    with atomic_output(out, overwrite=overwrite) as tmp:
        sr.save_as(tmp, enforce_file_format=True)
    return written
