"""Colour tables for the overlays: label maps, and the AI's probability map."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
from vtkmodules.util.numpy_support import numpy_to_vtk
from vtkmodules.vtkCommonCore import vtkLookupTable

from medseg_gui.core.segmentation import Segment

# Labels without a row in the segment table still show, in a colour that says "unknown".
UNKNOWN_LABEL_COLOR = (255, 0, 255)


def label_colors(segments: Iterable[Segment], hidden: Iterable[int] = (),
                 codes: int = 256) -> npt.NDArray[np.uint8]:
    """RGBA (``(codes, 4)`` uint8) of every label value ``0 .. codes - 1``.

    0 and ``hidden`` labels are transparent, a segment's label has its colour, and any other
    label shows in :data:`UNKNOWN_LABEL_COLOR`.
    """
    table = np.empty((int(codes), 4), dtype=np.uint8)
    table[:] = (*UNKNOWN_LABEL_COLOR, 255)
    for seg in segments:
        if 0 <= seg.label < codes:
            table[seg.label] = (*seg.color, 255)
    for value in (0, *hidden):
        if 0 <= value < codes:
            table[int(value)] = 0
    return table


def label_lookup_table(segments: Iterable[Segment], max_label: int,
                       hidden: Iterable[int] = ()) -> vtkLookupTable:
    """:func:`label_colors` as an indexed ``vtkLookupTable`` over ``0 .. max_label`` (labels
    above it transparent), for stock VTK pipelines such as the benchmarks' baselines.

    The range is ``[-0.5, max_label + 0.5]`` with ``max_label + 1`` entries, so each integer
    label falls in the middle of its own entry (no rounding at the bin edges).
    """
    n = max(int(max_label), 1) + 1
    lut = vtkLookupTable()
    lut.SetTableRange(-0.5, n - 0.5)
    lut.SetTable(numpy_to_vtk(label_colors(segments, hidden, n), deep=True))  # type: ignore[no-untyped-call]
    lut.SetBelowRangeColor(0.0, 0.0, 0.0, 0.0)
    lut.SetAboveRangeColor(0.0, 0.0, 0.0, 0.0)
    lut.UseBelowRangeColorOn()
    lut.UseAboveRangeColorOn()
    return lut


# matplotlib's viridis at 0, 1/8, ..., 1: perceptually uniform, readable by the colour-blind, and
# blue-green-yellow, so it stays apart from grey CT and the red-orange tumour label.
VIRIDIS = ((0.267, 0.005, 0.329), (0.279, 0.175, 0.483), (0.230, 0.322, 0.546),
           (0.173, 0.449, 0.558), (0.128, 0.567, 0.551), (0.158, 0.684, 0.502),
           (0.369, 0.789, 0.383), (0.678, 0.864, 0.190), (0.993, 0.906, 0.144))
# Alpha along the probability: transparent below the floor (the model saw nothing there),
# fading in up to the unsure band so the faint fringe does not veil the anatomy, opaque across
# the band (0.3-0.7, where the user should look), and fading to CONFIDENT_ALPHA at 1.0: the
# confident core is already the label overlay, and a solid yellow there hid the tumour's texture.
PROBABILITY_FLOOR, CONFIDENT_ALPHA = 0.05, 0.35
_ALPHA_AT = ((0.0, 0.0), (PROBABILITY_FLOOR, 0.0), (0.3, 1.0), (0.7, 1.0), (1.0, CONFIDENT_ALPHA))
# The overlay's voxels are float16 bit patterns (see probability_lookup_table): 1.0 is 0x3C00.
HALF_ONE_BITS = int(np.float16(1.0).view(np.uint16))


def probability_colors(floor: float = PROBABILITY_FLOOR) -> npt.NDArray[np.uint8]:
    """Viridis RGBA (``(65536, 4)`` uint8) for a probability map given as the *bit patterns*
    of its float16 values, indexed by those bits read as ``uint16``.

    Values below ``floor`` are transparent; see ``_ALPHA_AT`` for the alpha elsewhere. Read as
    ``uint16``, the halves in ``[0, 1]`` are the codes ``0 .. 0x3C00`` in the same order, so the
    map needs no copy or conversion. Codes above ``0x3C00`` (negative values, NaN) are
    transparent. Where the map is resliced it must be by nearest neighbour: blending bit
    patterns is meaningless.
    """
    value = np.arange(HALF_ONE_BITS + 1, dtype=np.uint16).view(np.float16).astype(np.float64)
    anchors = np.linspace(0.0, 1.0, len(VIRIDIS))
    rgba = np.zeros((65536, 4))
    for c in range(3):
        rgba[:value.size, c] = np.interp(value, anchors, [rgb[c] for rgb in VIRIDIS])
    xs, alphas = zip(*_ALPHA_AT, strict=True)
    rgba[:value.size, 3] = np.interp(value, xs, alphas)
    rgba[:value.size][value < floor, 3] = 0.0
    table: npt.NDArray[np.uint8] = np.rint(rgba * 255).astype(np.uint8)
    table[table[:, 3] == 0] = 0
    return table
