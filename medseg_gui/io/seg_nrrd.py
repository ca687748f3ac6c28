"""3D Slicer's segmentation NRRD (``.seg.nrrd``): writer and reader, through ``slicerio``.

Layout (Slicer's developer guide, "Segmentation labelmap file format"): a 3D NRRD in LPS space
when segments do not overlap, or 4D with a leading ``list`` axis of *layers* when they do; per
segment ``SegmentN_ID``, ``_Name``, ``_Color`` (RGB 0..1), ``_LabelValue``, ``_Layer``,
``_Extent`` (inclusive voxel bounding box, ``0 -1 0 -1 0 -1`` when empty) and ``_Tags`` with a
``TerminologyEntry`` (``context~SCHEME^value^meaning`` category and type) and the segment's
``Segmentation.Status``.

Why ``slicerio``: it is the Slicer project's own reader and writer of this container (on pynrrd,
which keeps every ``key:=value`` field and the float64 grid exactly), so the fields Slicer
writes are parsed as Slicer means them (terminology, layers, status, right-anterior-superior
files turned into LPS, conversion parameters, tags of other tools kept in ``tags``), and it
ships Slicer-written files that the tests read. pynrrd alone would leave the terminology and
tag grammar to be parsed here, as the hand-written reader it replaced did.

What a segment of a read file holds that the segment table has no place for (its own ID,
another terminology context, a type modifier, an anatomic region, other tools' tags) rides along
in :attr:`~medseg_gui.core.segmentation.Segment.carried` and is written back, so opening a
Slicer file, editing it and saving it loses none of them (a type modifier goes when the user
changes the type it modified).

Before anything is read, :func:`~medseg_gui.io.image_header.check_image_file` holds the header
to the file: the voxels it promises must fit in the file's (inflated) data and in the machine's
memory, so a damaged header is one clear error instead of a huge allocation or a short read.

The writer never crops to the segments' extent (Slicer's reader also accepts a cropped file with
``Segmentation_ReferenceImageExtentOffset``; this reader honours the file's own origin, so such
a file opens where Slicer shows it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import slicerio

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.segmentation import CodedConcept, Segment, Segmentation, SegmentSource
from medseg_gui.io.errors import LoadError
from medseg_gui.io.image_header import check_image_file
from medseg_gui.io.label_nifti import as_labelmap, default_segments
from medseg_gui.io.output import atomic_output
from medseg_gui.io.review_status import review_from_slicer, slicer_fields

_CONTEXT = "Segmentation category and type - 3D Slicer General Anatomy list"
_ANATOMY = "Anatomic codes - DICOM master list"
COMPRESSION_LEVEL = 6  # slicerio's default 9 writes a 512 x 512 x 300 map several times slower


def _extent(mask: np.ndarray[Any, Any]) -> list[int]:
    """Slicer's inclusive ``i0 i1 j0 j1 k0 k1`` box of a ``(k, j, i)`` mask."""
    if not mask.any():
        return [0, -1, 0, -1, 0, -1]
    out: list[int] = []
    for axis in (2, 1, 0):  # i, j, k
        other = tuple(a for a in range(3) if a != axis)
        nz = np.flatnonzero(mask.any(axis=other))
        out += [int(nz[0]), int(nz[-1])]
    return out


def _carried(info: dict[str, Any], label: int) -> str:
    """What a file's segment holds that the segment table has no place for and the writer would
    not write anyway (an ID of its own, another terminology context, a type modifier with the
    type it modifies, an anatomic region, other tools' tags), as :attr:`Segment.carried`."""
    terms = dict(info.get("terminology", {}))
    for key, ours in (("contextName", _CONTEXT), ("anatomicContextName", _ANATOMY)):
        if terms.get(key) == ours:
            del terms[key]
    terms.pop("category", None)
    if "typeModifier" not in terms:
        terms.pop("type", None)
    tags = {k: str(v) for k, v in info.get("tags", {}).items() if not k.startswith("medseg.")}
    sid = info.get("id") if info.get("id") != f"Segment_{label}" else None
    out = {k: v for k, v in (("id", sid), ("terminology", terms), ("tags", tags)) if v}
    return json.dumps(out, sort_keys=True) if out else ""


def _terminology(s: Segment, read: dict[str, Any]) -> dict[str, Any]:
    """The segment's terminology: the file's own context and anatomic region kept, its type
    modifier only while the type is the one it modified."""
    terms = {"contextName": _CONTEXT, "anatomicContextName": _ANATOMY}
    terms.update({k: v for k, v in read.items() if k not in ("category", "type", "typeModifier")})
    if "typeModifier" in read and read.get("type") == _code(s.type):
        terms["typeModifier"] = read["typeModifier"]
    return {**terms, "category": _code(s.category), "type": _code(s.type)}


def _segment_ids(segments: list[Segment]) -> list[str]:
    """Each segment's ``SegmentN_ID``: the one carried from its file (the first segment holding
    it keeps it), else ``Segment_<label>``; never two alike."""
    wanted = [json.loads(s.carried).get("id") if s.carried else None for s in segments]
    keeper: dict[str, int] = {}
    for n, sid in enumerate(wanted):
        if sid:
            keeper.setdefault(sid, n)
    taken, out = set(keeper), []
    for n, s in enumerate(segments):
        sid = wanted[n]
        if not (sid and keeper[sid] == n):
            sid, k = f"Segment_{s.label}", 1
            while sid in taken:
                k += 1
                sid = f"Segment_{s.label}_{k}"
            taken.add(sid)
        out.append(sid)
    return out


def _segment_fields(s: Segment, labelmap: np.ndarray[Any, Any], sid: str) -> dict[str, Any]:
    """One segment as slicerio's dictionary (the ``SegmentN_*`` fields Slicer writes) under ID
    ``sid``, with its review status where Slicer keeps it (:mod:`.review_status`) and what was
    carried from the file it came from."""
    status, review_tags = slicer_fields(s.review)
    carried = json.loads(s.carried) if s.carried else {}
    fields = {
        "id": sid,
        "name": s.name.replace("\n", " "),
        "nameAutoGenerated": False,
        "color": [round(c / 255, 6) for c in s.color],
        "colorAutoGenerated": False,
        "labelValue": s.label,
        "layer": 0,
        "extent": _extent(labelmap == s.label),
        "terminology": _terminology(s, carried.get("terminology", {})),
        "tags": {**carried.get("tags", {}), "medseg.Source": s.source.value,
                 "medseg.Model": s.model, **review_tags},
    }
    if status is not None:  # no status written for a segment that has none
        fields["status"] = status
    return fields


def _code(c: CodedConcept) -> list[str]:
    return [c.scheme, c.value, c.meaning]


def ijk_to_lps(g: Geometry) -> np.ndarray[Any, Any]:
    """The 4x4 matrix from ``(i, j, k, 1)`` to LPS mm (slicerio's ``ijkToLPS``)."""
    m = np.eye(4)
    m[:3, :3] = g.direction_matrix * np.asarray(g.spacing)[None, :]
    m[:3, 3] = g.origin
    return m


def write_seg_nrrd(seg: Segmentation, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``seg`` as a one-layer Slicer ``.seg.nrrd`` (gzip), atomically.

    Raises
    ------
    LoadError
        Inconsistent segment table or an existing target without ``overwrite``.
    """
    p = Path(path)
    problems = seg.validate()
    if problems:
        raise LoadError(p, "; ".join(problems))
    doc = {
        "voxels": seg.labelmap.transpose(2, 1, 0),  # (i, j, k): NRRD's first axis is fastest
        "ijkToLPS": ijk_to_lps(seg.geometry),
        "encoding": "gzip",
        "containedRepresentationNames": ["Binary labelmap"],
        "masterRepresentation": "Binary labelmap",
        "referenceImageExtentOffset": [0, 0, 0],
        "segments": [_segment_fields(s, seg.labelmap, sid)
                     for s, sid in zip(seg.segments, _segment_ids(seg.segments), strict=True)],
    }
    with atomic_output(p, overwrite=overwrite) as tmp:
        slicerio.write_segmentation(str(tmp), doc, compression_level=COMPRESSION_LEVEL)
    return p


def _concept(code: Any) -> CodedConcept | None:
    if not isinstance(code, list) or len(code) != 3 or not code[0] or not code[1]:
        return None
    return CodedConcept(value=str(code[1]), scheme=str(code[0]), meaning=str(code[2]))


def _segment(info: dict[str, Any], label: int) -> Segment:
    """A segment table row from slicerio's dictionary of one segment."""
    color = tuple(round(float(c) * 255) for c in info.get("color", (0.9, 0.3, 0.2))[:3])
    kw: dict[str, Any] = {}
    terms = info.get("terminology", {})
    for field in ("category", "type"):
        concept = _concept(terms.get(field))
        if concept is not None:
            kw[field] = concept
    tags = info.get("tags", {})
    kw["review"] = review_from_slicer(info.get("status"), tags)
    if tags.get("medseg.Source"):
        kw["source"] = SegmentSource(tags["medseg.Source"])
    if "medseg.Model" in tags:
        kw["model"] = str(tags["medseg.Model"])
    return Segment(label=label, name=str(info.get("name", f"Segment {label}")),
                   color=(color[0], color[1], color[2]), carried=_carried(info, label), **kw)


def read_seg_nrrd(path: str | Path) -> list[Segmentation]:
    """Read a ``.seg.nrrd`` (or a plain label-map NRRD) as one Segmentation per layer.

    A 3D file gives one Segmentation; a 4D file (overlapping segments) gives one per layer, each
    holding the segments whose ``_Layer`` is that layer. Without segment fields every label
    value present becomes a segment.

    Raises
    ------
    LoadError
        Not a NRRD, a header promising more voxels than the file or the machine holds, an
        unsupported layout, or a header inconsistent with the data.
    """
    p = Path(path)
    if not p.is_file():
        raise LoadError(p, "no such file")
    check_image_file(p)
    try:
        doc = slicerio.read_segmentation(str(p))
        geometry = _geometry(np.asarray(doc["ijkToLPS"], dtype=np.float64),
                             np.asarray(doc["voxels"]).shape[-3:])
    except LoadError:
        raise
    except Exception as exc:  # pynrrd's and slicerio's errors name no file
        raise LoadError(p, f"not a readable segmentation NRRD ({exc})") from exc
    voxels = np.asarray(doc["voxels"])
    layers = voxels[None] if voxels.ndim == 3 else voxels
    infos = doc.get("segments", [])
    out: list[Segmentation] = []
    for n, layer in enumerate(layers):
        lm = as_labelmap(p, np.ascontiguousarray(layer.transpose(2, 1, 0)))
        if infos:
            segs = [_segment(info, int(info.get("labelValue", 1))) for info in infos
                    if int(info.get("layer", 0)) == n]
        else:
            segs = default_segments([int(v) for v in np.unique(lm) if v != 0])
        if lm.dtype == np.uint8 and any(s.label > 255 for s in segs):
            lm = lm.astype(np.uint16)
        seg = Segmentation(lm, geometry, segs)
        if seg.validate():
            raise LoadError(p, f"layer {n}: " + "; ".join(seg.validate()))
        out.append(seg)
    return out


def _geometry(matrix: np.ndarray[Any, Any], size_ijk: tuple[int, ...]) -> Geometry:
    axes = matrix[:3, :3]
    norms = np.linalg.norm(axes, axis=0)
    return Geometry(shape=(size_ijk[2], size_ijk[1], size_ijk[0]), spacing=tuple(norms),
                    origin=tuple(matrix[:3, 3]), direction=tuple((axes / norms).reshape(-1)))
