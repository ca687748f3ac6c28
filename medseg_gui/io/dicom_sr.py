"""The measurements of a segmentation as a DICOM SR measurement report (TID 1500), via highdicom.

One Comprehensive 3D SR holds a TID 1500 Imaging Measurement Report with one TID 1411 volumetric
ROI group per non-empty segment. Each group references its segment in a DICOM SEG (TID 1411
wants a segment, and a segment is only addressable by the SEG's UIDs) and the CT series it was
drawn on; the SR's evidence lists the CT images and the SEG. The measurements
are :mod:`medseg_gui.core.measurements`'s, coded as

==========================  ===================  ===========  ==========================
measurement                 concept              unit (UCUM)  qualifiers
==========================  ===================  ===========  ==========================
volume                      SCT 118565006        ml
longest 3D diameter         SCT 81827009         mm           derivation SCT Maximum
RECIST long axis            SCT 103339001        mm           method DCM 126081 RECIST 1.1
RECIST short axis           SCT 103340004        mm           method DCM 126081 RECIST 1.1
mean / min / max HU (CT)    DCM 112031           [hnsf'U]     derivation SCT Mean/Min/Max
==========================  ===================  ===========  ==========================

The RECIST axes are given as lengths only; their endpoints are in the report JSON/CSV.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from medseg_gui import __version__
from medseg_gui.core.measurements import SegmentMeasurements, measure_segment
from medseg_gui.core.segmentation import Segmentation
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
    if m.recist is not None:
        axes = [(codes.SCT.LongAxis, m.recist.long), (codes.SCT.ShortAxis, m.recist.short)]
        out += [hd.sr.Measurement(name=name, value=axis.length_mm, unit=codes.UCUM.Millimeter,
                                  method=codes.DCM.RECIST1Point1)
                for name, axis in axes if axis is not None]
    if ct and m.mean is not None and m.minimum is not None and m.maximum is not None:
        out += [hd.sr.Measurement(name=codes.DCM.AttenuationCoefficient, value=value,
                                  unit=codes.UCUM.HounsfieldUnit, derivation=derivation)
                for derivation, value in ((codes.SCT.Mean, m.mean), (codes.SCT.Minimum, m.minimum),
                                          (codes.SCT.Maximum, m.maximum))]
    return out


def _seg_numbers(seg: Segmentation, seg_ds: Dataset) -> dict[int, int]:
    """Label -> SegmentNumber of ``seg_ds``, matching segments by name (SegmentLabel)."""
    by_name = {str(it.SegmentLabel): int(it.SegmentNumber) for it in seg_ds.SegmentSequence}
    missing = [s.name for s in seg.segments if s.name not in by_name]
    if missing:
        raise LoadError(getattr(seg_ds, "filename", None) or "SEG",
                        f"the SEG has no segment named {', '.join(map(repr, missing))}")
    return {s.label: by_name[s.name] for s in seg.segments}


def build_measurement_sr(seg: Segmentation, volume: Volume, sources: Sequence[Path | Dataset],
                         seg_ds: Dataset) -> hd.sr.Comprehensive3DSR:
    """The SR measuring every non-empty segment of ``seg`` (on ``volume``'s grid).

    Parameters
    ----------
    seg, volume
        The mask and the CT it was drawn on (same grid).
    sources
        The CT series' files or headers.
    seg_ds
        A DICOM SEG of ``seg`` on ``sources`` (written with it, or given); segments are matched
        by name.

    Raises
    ------
    LoadError
        Another grid, a segment missing from the SEG, or nothing to measure.
    """
    if not volume.geometry.same_grid(seg.geometry, tol=1e-3):
        raise LoadError(volume.source or "volume", "the mask is not on the study's grid")
    numbers = _seg_numbers(seg, seg_ds)
    ct = volume.modality.upper() == "CT"
    headers = source_headers(sources)
    series = hd.sr.SourceSeriesForSegmentation(headers[0].SeriesInstanceUID)
    groups = []
    for s in seg.segments:
        m = measure_segment(seg, s.label, volume)
        if not m.voxels:
            continue
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(),
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
    if not groups:
        raise LoadError("segmentation", "nothing to measure: every segment is empty")
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
                         overwrite: bool = False) -> list[Path]:
    """Write the SR to ``path`` and the SEG it references; returns the files written.

    Parameters
    ----------
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
    sr = build_measurement_sr(seg, volume, sources, seg_ds)  # before writing anything
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
