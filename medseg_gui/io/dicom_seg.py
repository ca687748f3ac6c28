"""DICOM SEG: write with highdicom against the source CT series, read any SEG onto a grid.

Writing references every source image and its frame of reference, puts one frame per source
slice and segment (highdicom omits empty frames), and codes each segment with its category/type
concepts, ``SegmentAlgorithmType`` from :class:`SegmentSource` and, for AI segments, an
algorithm identification ``name``/``version`` taken from ``Segment.model`` (``"id:version"``).
Segment numbers must run 1..n, so labels are numbered in ascending order; a table with labels
1..n (the usual case) reopens voxel-identical.

Reading is done here from the frame headers (position, orientation, segment number) so that BINARY,
FRACTIONAL (a voxel belongs where the fraction is >= 0.5) and LABELMAP SEGs, sparse ones (empty
frames omitted) and overlapping segments all land on one grid: the source CT's when given,
else the smallest regular grid holding every frame. Overlap policy: one label map cannot hold
two segments in one voxel, so segments are packed greedily into *layers* (as Slicer does) and
one Segmentation per layer is returned; without overlaps that is a single Segmentation.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from medseg_gui import __version__
from medseg_gui.core.geometry import Geometry
from medseg_gui.core.segmentation import CodedConcept, Segment, Segmentation, SegmentSource
from medseg_gui.core.volume import Volume
from medseg_gui.io.dicom_index import index_folder
from medseg_gui.io.errors import LoadError
from medseg_gui.io.output import atomic_output
from medseg_gui.io.review_status import seg_review, set_seg_review

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
_MAX_LEN = {"SH": 16, "CS": 16, "AE": 16, "LO": 64}
log = logging.getLogger(__name__)
_POS_TOL = 0.05  # in voxels: how far a frame may sit from a grid position


def source_files(volume: Volume) -> list[Path]:
    """The DICOM files of the series ``volume`` was loaded from (its folder is re-indexed).

    Raises
    ------
    LoadError
        The volume did not come from DICOM, or its series is no longer in its folder.
    """
    src = Path(volume.source)
    if not volume.info.series_uid or not src.exists():
        raise LoadError(src, "a DICOM SEG needs the source DICOM series; this study is not DICOM")
    entries = [se for _, _, se in index_folder(src).all_series()
               if se.series_uid == volume.info.series_uid and se.is_image]
    if not entries:
        raise LoadError(src, f"source series {volume.info.series_uid} is no longer there")
    return max(entries, key=lambda e: len(e.files)).files


def source_headers(sources: Sequence[str | Path | Dataset]) -> list[Dataset]:
    """The source images' headers (datasets are used as given, paths read without pixels)."""
    with warnings.catch_warnings():  # over-long source values are reported by clip_vr_lengths
        warnings.simplefilter("ignore", UserWarning)
        return [s if isinstance(s, Dataset) else pydicom.dcmread(s, stop_before_pixels=True)
                for s in sources]


def slice_index_of(ds: Dataset, geometry: Geometry) -> int:
    ijk = geometry.world_to_index([float(v) for v in ds.ImagePositionPatient])
    k = int(np.rint(ijk[2]))
    if np.max(np.abs(ijk - [0, 0, k])) > _POS_TOL or not 0 <= k < geometry.shape[0]:
        raise LoadError(ds.filename or "source", f"image at {list(ds.ImagePositionPatient)} is "
                        "not a slice of the segmentation grid (resampled or cropped study?)")
    return k


def _code(c: CodedConcept) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value=c.value, scheme_designator=c.scheme, meaning=c.meaning)


def _description(number: int, s: Segment) -> hd.seg.SegmentDescription:
    algo = None
    if s.source != SegmentSource.MANUAL:
        name, _, version = (s.model or f"medseg-gui:{__version__}").partition(":")
        algo = hd.AlgorithmIdentificationSequence(
            name=name or "medseg-gui", version=version or "unknown",
            family=codes.cid7162.ArtificialIntelligence)
    item = hd.seg.SegmentDescription(
        segment_number=number, segment_label=s.name[:64] or f"Segment {s.label}",
        segmented_property_category=_code(s.category), segmented_property_type=_code(s.type),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues[s.source.value],
        algorithm_identification=algo,
        display_color=hd.color.CIELabColor.from_rgb(*s.color))
    set_seg_review(item, s.review)  # in the Segment Description: io/review_status.py says why
    return item


def build_dicom_seg(seg: Segmentation, sources: Sequence[Path | Dataset], *,
                    segmentation_type: str = "BINARY", series_number: int = 300,
                    series_description: str = "Segmentation") -> hd.seg.Segmentation:
    """The highdicom SEG dataset of ``seg`` derived from the source images ``sources``.

    Raises
    ------
    LoadError
        No segments, a source image off the grid, or mask voxels on a slice without a source
        image (the study was resampled or gap-filled: exporting would shift the mask).
    """
    if not seg.segments:
        raise LoadError("segmentation", "nothing to export: the segment table is empty")
    dsets = source_headers(sources)
    ks = [slice_index_of(ds, seg.geometry) for ds in dsets]
    if len(set(ks)) != len(ks):
        raise LoadError(dsets[0].filename or "source", "two source images share one slice")
    order = np.argsort(ks)
    dsets, ks = [dsets[i] for i in order], [ks[i] for i in order]
    covered = np.zeros(seg.geometry.shape[0], bool)
    covered[ks] = True
    if seg.labelmap[~covered].any():
        raise LoadError("segmentation", "mask voxels lie on slices with no source image")
    table = sorted(seg.segments, key=lambda s: s.label)
    lut = np.zeros(max(s.label for s in table) + 1, np.uint16)
    for n, s in enumerate(table, start=1):
        lut[s.label] = n
    labels = lut[seg.labelmap[ks]]
    labels = labels.astype(np.uint8) if len(table) < 256 else labels
    with warnings.catch_warnings():  # single-component names, over-long copied values
        warnings.simplefilter("ignore", UserWarning)
        out = hd.seg.Segmentation(
            source_images=dsets, pixel_array=labels, segmentation_type=segmentation_type,
            segment_descriptions=[_description(n, s) for n, s in enumerate(table, start=1)],
            series_instance_uid=hd.UID(), series_number=series_number, sop_instance_uid=hd.UID(),
            instance_number=1, manufacturer="medseg-gui", manufacturer_model_name="medseg-gui",
            software_versions=__version__, device_serial_number="0",
            series_description=series_description, content_label="SEGMENTATION",
            content_description=series_description[:64], omit_empty_frames=True)
    clip_vr_lengths(out)
    return out


def clip_vr_lengths(ds: Dataset) -> None:
    """Shorten top-level strings copied from the source beyond their VR's maximum length.

    Some archives write e.g. a 17-character Study ID (SH allows 16); copying it verbatim would
    make the SEG fail validation, so it is cut to the maximum, which is logged.
    """
    for elem in ds:
        limit = _MAX_LEN.get(elem.VR)
        if limit and isinstance(elem.value, str) and len(elem.value) > limit:
            log.warning("%s %r cut to %d characters for DICOM", elem.keyword, elem.value, limit)
            elem.value = elem.value[:limit]


def write_dicom_seg(seg: Segmentation, sources: Sequence[Path | Dataset], path: str | Path, *,
                    overwrite: bool = False, segmentation_type: str = "BINARY") -> Path:
    """Write ``seg`` as a DICOM SEG file (atomically) referencing ``sources``."""
    ds = build_dicom_seg(seg, sources, segmentation_type=segmentation_type)
    with atomic_output(path, overwrite=overwrite) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return Path(path)


# -- reading ------------------------------------------------------------------------------------
def _first(ds: Dataset, frame: Dataset | None, seq: str, attr: str) -> Any:
    for holder in (frame, ds.get("SharedFunctionalGroupsSequence", [None])[0]):
        if holder is not None and seq in holder and attr in holder[seq][0]:
            return holder[seq][0][attr].value
    return None


def _segment_of(item: Dataset) -> Segment:
    def cc(seq: str) -> CodedConcept:
        c = item[seq][0]
        return CodedConcept(str(c.CodeValue), str(c.CodingSchemeDesignator), str(c.CodeMeaning))
    src = str(item.get("SegmentAlgorithmType", "MANUAL"))
    model = ""
    if "SegmentationAlgorithmIdentificationSequence" in item:
        a = item.SegmentationAlgorithmIdentificationSequence[0]
        model = f"{a.AlgorithmName}:{a.AlgorithmVersion}"
    elif item.get("SegmentAlgorithmName"):
        model = str(item.SegmentAlgorithmName)
    color = (230, 80, 60)
    if "RecommendedDisplayCIELabValue" in item:
        rgb = hd.color.CIELabColor.from_dicom_value(item.RecommendedDisplayCIELabValue).to_rgb()
        color = (int(rgb[0]), int(rgb[1]), int(rgb[2]))
    return Segment(label=int(item.SegmentNumber), name=str(item.get("SegmentLabel", "")),
                   color=color, category=cc("SegmentedPropertyCategoryCodeSequence"),
                   type=cc("SegmentedPropertyTypeCodeSequence"),
                   source=SegmentSource(src) if src in SegmentSource.__members__ else
                   SegmentSource.MANUAL, model=model, review=seg_review(item))


def _grid(path: Path, rows: int, cols: int, iop: Sequence[float], spacing: Sequence[float],
          positions: np.ndarray[Any, Any], between: float | None) -> Geometry:
    row, col = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    normal = np.cross(row, col)
    depth = positions @ normal
    uniq = np.unique(np.round(depth, 3))
    steps = np.diff(uniq)
    dz = between or (float(steps.min()) if steps.size else 1.0)
    n = int(np.rint((uniq[-1] - uniq[0]) / dz)) + 1 if uniq.size else 1
    origin = positions[int(np.argmin(depth))]
    return Geometry(shape=(n, rows, cols), spacing=(float(spacing[1]), float(spacing[0]), dz),
                    origin=tuple(origin), direction=tuple(np.stack([row, col, normal], 1).ravel()))


def read_dicom_seg(path: str | Path, reference: Geometry | None = None) -> list[Segmentation]:
    """Read a DICOM SEG as one Segmentation per layer of non-overlapping segments.

    Parameters
    ----------
    reference
        The grid to place frames on (the source CT's); when ``None``, the grid is built from
        the frames. Frames must fall on slices of the reference: nothing is resampled.

    Raises
    ------
    LoadError
        Not a SEG, a frame off the grid, or a frame orientation other than the grid's.
    """
    p = Path(path)
    try:
        ds = pydicom.dcmread(p)
        if str(ds.SOPClassUID) not in (SEG_SOP_CLASS, "1.2.840.10008.5.1.4.1.1.66.7"):
            raise LoadError(p, f"not a DICOM SEG (SOP class {ds.SOPClassUID})")
        frames = ds.pixel_array.reshape(int(ds.get("NumberOfFrames", 1)), ds.Rows, ds.Columns)
    except LoadError:
        raise
    except Exception as exc:
        raise LoadError(p, f"not a readable DICOM SEG ({type(exc).__name__}: {exc})") from exc
    kind = str(ds.SegmentationType)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or [None] * len(frames)
    positions = np.array([[float(v) for v in _first(ds, f, "PlanePositionSequence",
                                                     "ImagePositionPatient")] for f in per_frame])
    iop = [float(v) for v in _first(ds, per_frame[0], "PlaneOrientationSequence",
                                    "ImageOrientationPatient")]
    spacing = [float(v) for v in _first(ds, per_frame[0], "PixelMeasuresSequence",
                                        "PixelSpacing")]
    between = _first(ds, per_frame[0], "PixelMeasuresSequence", "SpacingBetweenSlices")
    grid = reference or _grid(p, ds.Rows, ds.Columns, iop, spacing, positions,
                              float(between) if between else None)
    d = grid.direction_matrix
    if not (np.allclose(d[:, 0], iop[:3], atol=1e-3) and np.allclose(d[:, 1], iop[3:], atol=1e-3)
            and grid.shape[1:] == (ds.Rows, ds.Columns)):
        raise LoadError(p, "SEG frames are not rows/columns of the reference grid")
    segs = {int(it.SegmentNumber): _segment_of(it) for it in ds.SegmentSequence
            if int(it.SegmentNumber) > 0}
    masks = {n: np.zeros(grid.shape, bool) for n in segs}
    threshold = float(ds.get("MaximumFractionalValue", 2)) / 2 if kind == "FRACTIONAL" else 0.5
    for f, (frame, item) in enumerate(zip(frames, per_frame, strict=True)):
        ijk = grid.world_to_index(positions[f])
        k = int(np.rint(ijk[2]))
        if np.max(np.abs(ijk - [0, 0, k])) > _POS_TOL or not 0 <= k < grid.shape[0]:
            raise LoadError(p, f"frame {f + 1} at {list(positions[f])} is off the grid")
        if kind == "LABELMAP":
            for n in np.unique(frame):
                if int(n) in masks:
                    masks[int(n)][k] |= frame == n
        else:
            n = int(_first(ds, item, "SegmentIdentificationSequence", "ReferencedSegmentNumber"))
            masks[n][k] |= frame >= threshold
    return _layers(masks, segs, grid)


def _layers(masks: dict[int, np.ndarray[Any, Any]], segs: dict[int, Segment],
            grid: Geometry) -> list[Segmentation]:
    layers: list[tuple[np.ndarray[Any, Any], list[Segment]]] = []
    dtype = np.uint8 if max(segs, default=0) < 256 else np.uint16
    for n in sorted(segs):
        for lm, table in layers:
            if not (lm[masks[n]]).any():
                lm[masks[n]] = n
                table.append(segs[n])
                break
        else:
            lm = np.zeros(grid.shape, dtype)
            lm[masks[n]] = n
            layers.append((lm, [segs[n]]))
    return [Segmentation(lm, grid, table) for lm, table in layers] or [
        Segmentation(np.zeros(grid.shape, np.uint8), grid, [])]
