"""Qt-free, VTK-free, torch-free core types: geometry, volumes, segmentations, progress."""

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.progress import Cancelled, Progress, no_progress
from medseg_gui.core.segmentation import CodedConcept, Segment, Segmentation, SegmentSource
from medseg_gui.core.volume import StudyInfo, Volume

__all__ = [
    "Cancelled",
    "CodedConcept",
    "Geometry",
    "Progress",
    "Segment",
    "SegmentSource",
    "Segmentation",
    "StudyInfo",
    "Volume",
    "no_progress",
]
