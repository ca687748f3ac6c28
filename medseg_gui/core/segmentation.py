"""A label map on a volume's grid plus the table describing each label."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.review import Review


@dataclass(frozen=True)
class CodedConcept:
    """A coded value as DICOM uses it (code value, coding scheme designator, code meaning)."""

    value: str
    scheme: str
    meaning: str

    def same_code(self, other: CodedConcept) -> bool:
        """Whether both name one concept: same scheme and code value (the meaning is free
        text and may be worded differently)."""
        return (self.scheme, self.value) == (other.scheme, other.value)


# SNOMED CT codes used by DICOM SEG's segment description (PS3.16 CID 7150 / CID 7151).
MORPHOLOGICALLY_ABNORMAL_STRUCTURE = CodedConcept(
    "49755003", "SCT", "Morphologically Abnormal Structure"
)
NEOPLASM = CodedConcept("108369006", "SCT", "Neoplasm")
TISSUE = CodedConcept("85756007", "SCT", "Tissue")


class SegmentSource(StrEnum):
    """Who drew a segment; maps onto DICOM SEG's SegmentAlgorithmType."""

    AUTOMATIC = "AUTOMATIC"  # an untouched AI mask
    SEMIAUTOMATIC = "SEMIAUTOMATIC"  # an AI mask a clinician corrected
    MANUAL = "MANUAL"


@dataclass(frozen=True)
class Segment:
    """One row of the segment table.

    Parameters
    ----------
    label
        The value this segment has in the label map (1..65535).
    name
        Display name.
    color
        RGB, 0..255.
    category, type
        Coded concepts (DICOM SEG's segmented property category and type).
    source
        AUTOMATIC, SEMIAUTOMATIC or MANUAL.
    model
        ``"model-id:version"`` of the AI model that drew it, empty for manual segments.
    review
        Its review status with who set it and when (:mod:`medseg_gui.core.review`), ``None``
        when none was recorded (a segment opened from a plain label image).
    carried
        What the file it was read from holds for it that this table has no place for (JSON, for
        that format's writer to put back; e.g. a ``.seg.nrrd`` segment's ID, anatomic region
        and other tools' tags), empty otherwise.
    """

    label: int
    name: str
    color: tuple[int, int, int] = (230, 80, 60)
    category: CodedConcept = MORPHOLOGICALLY_ABNORMAL_STRUCTURE
    type: CodedConcept = NEOPLASM
    source: SegmentSource = SegmentSource.MANUAL
    model: str = ""
    review: Review | None = None
    carried: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.label <= 65535:
            raise ValueError(f"segment label must be 1..65535, got {self.label}")
        if len(self.color) != 3 or any(not 0 <= int(c) <= 255 for c in self.color):
            raise ValueError(f"segment colour must be three values 0..255, got {self.color!r}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["source"] = self.source.value
        d["review"] = None if self.review is None else self.review.to_dict()
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Segment:
        return Segment(
            label=int(d["label"]),
            name=str(d["name"]),
            color=(int(d["color"][0]), int(d["color"][1]), int(d["color"][2])),
            category=CodedConcept(**d["category"]),
            type=CodedConcept(**d["type"]),
            source=SegmentSource(d["source"]),
            model=str(d.get("model", "")),
            review=Review.from_dict(d["review"]) if d.get("review") else None,
            carried=str(d.get("carried", "")),
        )


@dataclass
class Segmentation:
    """A label map (``uint8`` or ``uint16``, indexed ``[k, j, i]``) on ``geometry``.

    The label map is mutable (the editor paints into it); the segment table is a list of
    :class:`Segment`. Voxels whose label has no row in the table are a data error and are
    reported by :meth:`validate`.
    """

    labelmap: npt.NDArray[np.unsignedinteger[Any]]
    geometry: Geometry
    segments: list[Segment] = field(default_factory=list)

    def __post_init__(self) -> None:
        if tuple(self.labelmap.shape) != self.geometry.shape:
            raise ValueError(
                f"label map shape {self.labelmap.shape} does not match grid {self.geometry.shape}"
            )
        if self.labelmap.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"label map must be uint8 or uint16, got {self.labelmap.dtype}")

    @staticmethod
    def empty(geometry: Geometry, segments: list[Segment] | None = None) -> Segmentation:
        segs = list(segments or [])
        dtype = np.uint16 if any(s.label > 255 for s in segs) else np.uint8
        return Segmentation(np.zeros(geometry.shape, dtype=dtype), geometry, segs)

    def segment(self, label: int) -> Segment:
        for s in self.segments:
            if s.label == label:
                return s
        raise KeyError(f"no segment with label {label}")

    def mask(self, label: int) -> npt.NDArray[np.bool_]:
        """Boolean mask of one segment."""
        return np.asarray(self.labelmap == label)

    def voxel_volume_ml(self) -> float:
        sx, sy, sz = self.geometry.spacing
        return abs(float(np.linalg.det(self.geometry.direction_matrix))) * sx * sy * sz / 1000.0

    def volumes_ml(self) -> dict[int, float]:
        """Volume of each segment in millilitres."""
        counts = np.bincount(self.labelmap.ravel(), minlength=max(
            [s.label for s in self.segments] + [0]) + 1)
        v = self.voxel_volume_ml()
        return {s.label: float(counts[s.label]) * v for s in self.segments}

    def validate(self) -> list[str]:
        """Problems with the table or the label map (an empty list when consistent)."""
        problems = []
        labels = [s.label for s in self.segments]
        if len(set(labels)) != len(labels):
            problems.append(f"duplicate segment labels in {labels}")
        present = set(np.unique(self.labelmap).tolist()) - {0}
        missing = sorted(present - set(labels))
        if missing:
            problems.append(f"label values {missing} have no segment in the table")
        return problems

    def table_dict(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.segments]
