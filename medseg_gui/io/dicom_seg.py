"""DICOM SEG: write with highdicom against the source CT series, read any SEG onto a grid.

Writing references every source image and its frame of reference, puts one frame per source
slice and segment (highdicom omits empty frames), and codes each segment with its category/type
concepts, ``SegmentAlgorithmType`` from :class:`SegmentSource` and, for AI segments, an
algorithm identification ``name``/``version`` taken from ``Segment.model`` (``"id:version"``).
Segment numbers must run 1..n, so labels are numbered in ascending order; a table with labels
1..n (the usual case) reopens voxel-identical.

Reading goes through highdicom (``Segmentation.get_volume``), which decodes BINARY, FRACTIONAL
(a voxel belongs where the fraction is >= 0.5) and LABELMAP SEGs, sparse ones (empty frames
omitted) and places every frame in space; the frames are then moved onto one grid by whole
voxels (``Volume.match_geometry``): the source CT's when given, else the regular grid of the
frames. Overlap policy: one label map cannot hold two segments in one voxel, so segments are
packed greedily into *layers* (as Slicer does) and one Segmentation per layer is returned;
without overlaps that is a single Segmentation.
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
from medseg_gui.core.progress import Progress, check, no_progress
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


def read_dicom_seg(path: str | Path, reference: Geometry | None = None, *,
                   progress: Progress = no_progress) -> list[Segmentation]:
    """Read a DICOM SEG as one Segmentation per layer of non-overlapping segments.

    highdicom decodes the frames and places them in space (:meth:`highdicom.seg.Segmentation.
    get_volume`, one segment at a time so that only one segment's mask is held besides the
    result); a FRACTIONAL segment holds the voxels whose fraction is at least 0.5.

    Parameters
    ----------
    reference
        The grid to place frames on (the source CT's); when ``None``, the grid is built from
        the frames, its slice axis along row x column. Frames are only moved onto the
        reference by whole voxels (highdicom's ``match_geometry``): nothing is resampled.
    progress
        Told before each segment is decoded; ``False`` cancels.

    Raises
    ------
    LoadError
        Not a SEG, frames that are not a regular grid, frames off the reference grid, or mask
        voxels outside it.
    Cancelled
        ``progress`` said stop.
    """
    p = Path(path)
    try:
        head = pydicom.dcmread(p, stop_before_pixels=True, specific_tags=[
            "SOPClassUID", "Rows", "Columns", "SegmentationType"])
        if str(head.get("SOPClassUID", "")) not in (SEG_SOP_CLASS,
                                                    "1.2.840.10008.5.1.4.1.1.66.7"):
            raise LoadError(p, f"not a DICOM SEG (SOP class {head.get('SOPClassUID', 'none')})")
        # Lazily, frames are read from the file as each segment's volume asks for them
        # (2x faster on a 300-frame SEG); highdicom cannot do that for BINARY frames whose
        # bit-packed pixels do not end on a byte.
        lazy = head.get("SegmentationType") != "BINARY" or \
            int(head.get("Rows", 0)) * int(head.get("Columns", 0)) % 8 == 0
        with warnings.catch_warnings():  # highdicom's notes on optional attributes
            warnings.simplefilter("ignore", UserWarning)
            seg = hd.seg.segread(p, lazy_frame_retrieval=lazy)
        numbers = [n for n in seg.segment_numbers if n > 0]  # a LABELMAP's 0 is background
        segs = {n: _segment_of(seg.get_segment_description(n)) for n in numbers}
    except LoadError:
        raise
    except Exception as exc:
        raise LoadError(p, f"not a readable DICOM SEG ({type(exc).__name__}: {exc})") from exc
    frames = seg.get_volume_geometry()
    if frames is None:
        raise LoadError(p, "SEG frames do not form a volume (not parallel, or irregularly placed)")
    if reference is None:
        target = frames.ensure_handedness(hd.AxisHandedness.RIGHT_HANDED, flip_axis=0)
        grid = _grid_of(target)
    else:
        target, grid = _volume_geometry(reference), reference
    masks: dict[int, np.ndarray[Any, Any]] = {}
    for done, n in enumerate(numbers):
        check(progress, done / len(numbers), f"Decoding segment {done + 1}/{len(numbers)}")
        try:
            vol = seg.get_volume(segment_numbers=[n], combine_segments=False,
                                 rescale_fractional=True)
        except Exception as exc:  # pixel data that does not decode, or frames off one grid
            raise LoadError(p, f"not a readable DICOM SEG ({type(exc).__name__}: {exc})") \
                from exc
        present = vol.array  # 0/1, or fractions in 0..1 (FRACTIONAL)
        if present.dtype.kind == "f":
            present = (present >= 0.5).astype(np.uint8)
        try:
            placed = vol.with_array(present).match_geometry(target, tol=_POS_TOL * min(
                grid.spacing))
        except RuntimeError as exc:
            raise LoadError(p, f"SEG frames are not slices of the study's grid ({exc}); was "
                            "the study resampled or cropped?") from exc
        if np.count_nonzero(placed.array) != np.count_nonzero(present):
            raise LoadError(p, f"segment {n} has voxels outside the study's grid")
        masks[n] = placed.array[..., 0] != 0
    return _layers(masks, segs, grid)


def _volume_geometry(grid: Geometry) -> hd.VolumeGeometry:
    """``grid`` as highdicom's geometry: array axes (slice, row, column) = our (k, j, i)."""
    d, (sx, sy, sz) = grid.direction_matrix, grid.spacing
    affine = np.eye(4)
    affine[:3, :3] = np.stack([d[:, 2] * sz, d[:, 1] * sy, d[:, 0] * sx], axis=1)
    affine[:3, 3] = grid.origin
    return hd.VolumeGeometry(affine, grid.shape, coordinate_system="PATIENT")


def _grid_of(volume: hd.VolumeGeometry) -> Geometry:
    """Our grid of a highdicom geometry whose axes are (slice, row, column)."""
    axes = volume.affine[:3, :3]
    sizes = np.linalg.norm(axes, axis=0)
    unit = axes / sizes
    return Geometry(shape=volume.spatial_shape, spacing=(sizes[2], sizes[1], sizes[0]),
                    origin=tuple(volume.affine[:3, 3]),
                    direction=tuple(np.stack([unit[:, 2], unit[:, 1], unit[:, 0]], 1).ravel()))


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
