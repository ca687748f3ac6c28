"""Which voxels a paint tool may change: intensity range, inside/outside a segment, overwrite rule.

The same :class:`PaintConstraint` limits the brush, fill, scissors and the morphology tools, so
the tool panel has one "masking" section as in 3D Slicer's Segment Editor.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg_gui.editing.base import BoolArray, LabelArray

HU_PRESETS: dict[str, tuple[float, float]] = {
    "Soft tissue": (-100.0, 300.0),
    "Tumour (enhancing)": (20.0, 200.0),
    "Muscle": (10.0, 100.0),
    "Fat": (-200.0, -30.0),
    "Bone": (200.0, 3000.0),
    "Lung": (-1000.0, -400.0),
    "Air": (-1100.0, -900.0),
    "Liver (contrast)": (40.0, 250.0),
}
"""Intensity-limit presets in HU, ``name -> (lo, hi)`` inclusive; the UI lists these."""


class Overwrite(StrEnum):
    """What painting may do to voxels of other segments."""

    ALL = "all"  # paint over any other segment (3D Slicer's default)
    NONE = "none"  # only background and the active segment change


class MaskMode(StrEnum):
    """Where painting is allowed relative to another segment (or to all segments)."""

    EVERYWHERE = "everywhere"
    INSIDE = "inside"  # only inside segment ``mask_label`` (0: inside any segment)
    OUTSIDE = "outside"  # only outside segment ``mask_label`` (0: outside all segments)


@dataclass(frozen=True)
class PaintConstraint:
    """Limits on which voxels a paint or erase may change.

    Parameters
    ----------
    hu_range
        ``(lo, hi)`` inclusive: only voxels whose image value lies in it change (``None``: any).
    mask_mode, mask_label
        Restrict painting to inside or outside segment ``mask_label`` (0 = any segment).
    overwrite
        Whether painting replaces other segments' voxels.
    erase_any
        Erasing clears every label under the brush, not only the active segment's.
    locked
        Labels no tool may change (their voxels are neither painted over nor erased), whatever
        ``overwrite`` says.
    """

    hu_range: tuple[float, float] | None = None
    mask_mode: MaskMode = MaskMode.EVERYWHERE
    mask_label: int = 0
    overwrite: Overwrite = Overwrite.ALL
    erase_any: bool = False
    locked: frozenset[int] = frozenset()

    @staticmethod
    def preset(name: str, **kwargs: Any) -> PaintConstraint:
        """A constraint with the intensity range of :data:`HU_PRESETS` ``[name]``."""
        return PaintConstraint(hu_range=HU_PRESETS[name], **kwargs)

    def allowed(self, labels: LabelArray, image: npt.NDArray[Any] | None, label: int,
                erase: bool) -> BoolArray | None:
        """Voxels of a box that may change; ``None`` means all of them (no test needed).

        Parameters
        ----------
        labels
            The label map values of the box.
        image
            The image values of the same box (needed only with ``hu_range``).
        label
            The active segment's label.
        erase
            Whether the tool erases (writes 0) rather than paints ``label``.
        """
        ok: BoolArray | None = None

        def both(m: BoolArray) -> BoolArray:
            return m if ok is None else np.logical_and(ok, m)

        if erase:
            ok = both(labels != 0) if self.erase_any else both(labels == label)
        elif self.overwrite is Overwrite.NONE:
            ok = both((labels == 0) | (labels == label))
        if self.hu_range is not None and image is not None:
            lo, hi = self.hu_range
            ok = both((image >= lo) & (image <= hi))
        if self.mask_mode is not MaskMode.EVERYWHERE and not erase:
            inside = labels != 0 if self.mask_label == 0 else labels == self.mask_label
            ok = both(inside if self.mask_mode is MaskMode.INSIDE else ~inside)
        if self.locked:
            ok = both(~np.isin(labels, np.fromiter(self.locked, dtype=np.int64)))
        return ok


NO_CONSTRAINT = PaintConstraint()


def apply_paint(old: LabelArray, where: BoolArray, image: npt.NDArray[Any] | None, label: int,
                erase: bool, constraint: PaintConstraint = NO_CONSTRAINT) -> LabelArray:
    """New values of a box: ``label`` (or 0 when erasing) where ``where`` and the constraint allow.

    Used by the one-shot tools (fill, scissors); the brush inlines the same logic in place.
    """
    allowed = constraint.allowed(old, image, label, erase)
    mask = where if allowed is None else where & allowed
    new = old.copy()
    new[mask] = 0 if erase else label
    return new
