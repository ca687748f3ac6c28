"""Colour tables for label-map overlays."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from vtkmodules.vtkCommonCore import vtkLookupTable

from medseg_gui.core.segmentation import Segment, Segmentation
from medseg_gui.core.volume import Volume

# Labels without a row in the segment table still show, in a colour that says "unknown".
UNKNOWN_LABEL_COLOR = (255, 0, 255)


def _rgba(color: tuple[int, int, int]) -> tuple[float, float, float, float]:
    return (color[0] / 255.0, color[1] / 255.0, color[2] / 255.0, 1.0)


def label_lookup_table(segments: Iterable[Segment], max_label: int,
                       hidden: Iterable[int] = ()) -> vtkLookupTable:
    """An indexed table mapping label ``v`` to its segment colour, 0 to transparent.

    The range is ``[-0.5, max_label + 0.5]`` with ``max_label + 1`` entries, so each integer
    label falls in the middle of its own entry (no rounding at the bin edges).
    """
    n = max(int(max_label), 1) + 1
    lut = vtkLookupTable()
    lut.SetNumberOfTableValues(n)
    lut.SetTableRange(-0.5, n - 0.5)
    for value in range(n):
        lut.SetTableValue(value, *_rgba(UNKNOWN_LABEL_COLOR))
    lut.SetTableValue(0, 0.0, 0.0, 0.0, 0.0)
    for seg in segments:
        if seg.label < n:
            lut.SetTableValue(seg.label, *_rgba(seg.color))
    for value in hidden:
        if 0 <= value < n:
            lut.SetTableValue(int(value), 0.0, 0.0, 0.0, 0.0)
    lut.SetBelowRangeColor(0.0, 0.0, 0.0, 0.0)
    lut.SetAboveRangeColor(0.0, 0.0, 0.0, 0.0)
    lut.UseBelowRangeColorOn()
    lut.UseAboveRangeColorOn()
    lut.Build()
    # Build() can reset entries on some VTK versions; set them again to be sure.
    lut.SetTableValue(0, 0.0, 0.0, 0.0, 0.0)
    return lut


# Distinct, colour-blind-friendly defaults (Okabe-Ito), cycled for label maps without a table.
PALETTE = [(230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178),
           (213, 94, 0), (204, 121, 167)]


def segmentation_from_labels(labels: Volume) -> Segmentation:
    """A :class:`Segmentation` from an integer label image (e.g. a NIfTI mask).

    Each non-zero value becomes a segment named ``"Label N"`` in a palette colour.
    """
    arr = np.asarray(labels.array)
    if arr.size and (arr.min() < 0 or arr.max() > 65535 or not np.all(np.mod(arr, 1) == 0)):
        raise ValueError("a label map needs integer values 0..65535")
    dtype = np.uint8 if arr.max(initial=0) <= 255 else np.uint16
    values = [int(v) for v in np.unique(arr) if v != 0]
    segments = [Segment(label=v, name=f"Label {v}", color=PALETTE[(v - 1) % len(PALETTE)])
                for v in values]
    return Segmentation(arr.astype(dtype), labels.geometry, segments)
