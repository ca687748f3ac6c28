"""Colour tables for label-map overlays."""

from __future__ import annotations

from collections.abc import Iterable

from vtkmodules.vtkCommonCore import vtkLookupTable

from medseg_gui.core.segmentation import Segment

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
