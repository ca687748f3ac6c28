"""Is a study inside what an automatic model was trained for, and does its result look like it?

An automatic model paints *something* on any CT: ``sts-tumour-unet`` (limb sarcomas) painted
5 L of "tumour" in a chest CT and 300 mL of heart and mediastinum in a lung-tumour crop, and
nothing said so. A model card's ``intended_use`` section states what the model was made for
(modality, body region, tumour volume range, field of view) and the limits of a few cheap image
measures; :func:`check_study` compares a study with them before inference and
:func:`check_result` compares the result after it. Each returns reasons (one short sentence
each, empty when inside), which the CLI prints as one warning line (exit 3, no mask written
unless ``--force``) and the GUI shows before it offers the result as a draft.

The measures, chosen on the 43 shared sarcoma CTs against chest, abdomen and head-and-neck CTs
(``benchmarks/eval_guard.py`` prints them for every shared study):

- **body cross-section**: the area of the largest connected region above -300 HU on each
  axial slice (every ~6 mm, on a ~2 mm grid), its 90th percentile over the slices. A limb or
  two legs side by side stay below ~460 cm²; a trunk is 500-800 cm².
- **bone sections**: the number of separate bone cross-sections (above 200 HU, 15-600 mm²) per
  axial slice, its median over the slices (every ~5 mm, ~1 mm grid). Limbs show 0-6 (two
  femurs, two tibiae and fibulae); ribs, vertebrae, sternum and scapulae make 8-26 in a chest.
- **not CT in HU**: no voxel below -300 (MR, or a CT not in Hounsfield units).
- after inference, the **predicted volume** and the **air margin**: the fraction of a 5 mm
  shell around the predicted mask that is below -400 HU (air or lung). Sarcomas sit in muscle
  and fat (at most 32 % of their shell is air, where they reach the skin); the same model's
  masks in a chest, liver or neck CT lie against lung or airway (40-93 %).

A DICOM ``BodyPartExamined`` that names another region is a reason by itself; an empty or
generic one (``WHOLEBODY``, ``PARTIALBODY``) leaves the decision to the image measures.
Promptable models have no ``intended_use`` (they are for any lesion) and are never checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from medseg_gui.core.volume import Volume
from medseg_gui.inference.model_card import ModelCard

BODY_HU = -300.0
BONE_HU = 200.0
AIR_HU = -400.0
MARGIN_MM = 5.0
GENERIC_BODY_PARTS = frozenset({"", "WHOLEBODY", "PARTIALBODY", "BODY", "UNKNOWN"})


def _part(text: str) -> str:
    """A body part term compared without case, spaces or underscores ("LOWER LIMB")."""
    return str(text).upper().replace(" ", "").replace("_", "")


@dataclass(frozen=True)
class IntendedUse:
    """A card's ``intended_use`` section; limits that are ``None`` are not checked.

    ``trained_on`` holds the measures' ranges on the training studies, quoted in the reasons.
    """

    modality: str = "CT"
    body_region: str = ""
    body_parts: tuple[str, ...] = ()
    max_cross_section_cm2: float | None = None
    max_bone_sections: float | None = None
    max_volume_ml: float | None = None
    max_air_margin: float | None = None
    trained_on: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def from_json(d: dict[str, Any]) -> IntendedUse:
        limits = d.get("limits", {})

        def limit(name: str) -> float | None:
            value = limits.get(name)
            return None if value is None else float(value)

        return IntendedUse(
            modality=str(d.get("modality", "CT")), body_region=str(d.get("body_region", "")),
            body_parts=tuple(_part(p) for p in d.get("body_parts", ())),
            max_cross_section_cm2=limit("cross_section_cm2"),
            max_bone_sections=limit("bone_sections"), max_volume_ml=limit("volume_ml"),
            max_air_margin=limit("air_margin"), trained_on=dict(d.get("trained_on", {})))


def intended_use(card: ModelCard) -> IntendedUse | None:
    """The card's intended use, or ``None`` when it states none (a promptable model)."""
    return IntendedUse.from_json(card.intended_use) if card.intended_use else None


@dataclass(frozen=True)
class StudyMeasures:
    """The image measures of one study (see the module docstring)."""

    cross_section_cm2: float
    bone_sections: float
    lowest_hu: float


def _grid_step(spacing_mm: float, target_mm: float) -> int:
    return max(1, round(target_mm / max(spacing_mm, 1e-3)))


def measure_study(volume: Volume) -> StudyMeasures:
    """Body cross-section (cm², 90th percentile) and bone sections per slice (median).

    Axial slices are the array's ``k`` planes; the grids are subsampled so that a
    512 x 512 x 300 CT takes about a quarter of a second.
    """
    arr = volume.array
    sx, sy, sz = volume.geometry.spacing
    lowest = float(arr[:, ::4, ::4].min()) if arr.size else 0.0
    si, sj = _grid_step(sx, 2.0), _grid_step(sy, 2.0)
    cm2 = sx * si * sy * sj / 100.0
    areas = []
    for plane in arr[::_grid_step(sz, 6.0), ::sj, ::si]:
        labels, n = ndimage.label(plane > BODY_HU)
        areas.append(float(np.bincount(labels.ravel())[1:].max()) * cm2 if n else 0.0)
    bi, bj = _grid_step(sx, 1.0), _grid_step(sy, 1.0)
    mm2 = sx * bi * sy * bj
    counts = []
    for plane in arr[::_grid_step(sz, 5.0), ::bj, ::bi]:
        labels, n = ndimage.label(plane > BONE_HU)
        sizes = np.bincount(labels.ravel())[1:] * mm2 if n else np.zeros(0)
        counts.append(int(((sizes >= 15.0) & (sizes <= 600.0)).sum()))
    return StudyMeasures(float(np.percentile(areas, 90)) if areas else 0.0,
                         float(np.median(counts)) if counts else 0.0, lowest)


def check_study(volume: Volume, use: IntendedUse,
                measures: StudyMeasures | None = None) -> list[str]:
    """Reasons why ``volume`` is outside ``use`` (empty when it is inside)."""
    reasons = []
    info = volume.info
    if info.modality and use.modality and info.modality.upper() != use.modality.upper():
        reasons.append(f"the modality is {info.modality}, not {use.modality}")
    part = _part(info.body_part)
    if use.body_parts and part not in GENERIC_BODY_PARTS and part not in use.body_parts:
        reasons.append(f"DICOM BodyPartExamined is {info.body_part.strip()}, not "
                       f"{use.body_region or 'a region the model was trained on'}")
    m = measures or measure_study(volume)
    trained = use.trained_on
    if use.modality.upper() == "CT" and m.lowest_hu > BODY_HU:
        reasons.append(f"its voxel values do not look like CT in Hounsfield units (lowest "
                       f"{m.lowest_hu:.0f}, no air)")
        return reasons  # the HU measures below mean nothing then
    if use.max_cross_section_cm2 is not None and m.cross_section_cm2 > use.max_cross_section_cm2:
        seen = trained.get("cross_section_cm2")
        reasons.append(f"the body is {m.cross_section_cm2:.0f} cm² in cross-section, wider than "
                       f"{use.body_region or 'the training studies'}"
                       + (f" (trained on {seen[0]:.0f}-{seen[1]:.0f} cm²)" if seen else ""))
    if use.max_bone_sections is not None and m.bone_sections > use.max_bone_sections:
        seen = trained.get("bone_sections")
        reasons.append(f"{m.bone_sections:g} separate bone sections per slice, as in a trunk "
                       "(ribs, spine)" + (f"; the training studies show {seen[0]:.0f}-"
                                          f"{seen[1]:.0f}" if seen else ""))
    return reasons


def air_margin(volume: Volume, mask: npt.NDArray[np.bool_]) -> float | None:
    """The fraction of a 5 mm shell around ``mask`` below -400 HU (``None`` if it is empty).

    Computed on a ~2 mm grid inside the mask's bounding box (plus the margin), so a litre-sized
    mask takes well under a second.
    """
    if not mask.any():
        return None
    sx, sy, sz = volume.geometry.spacing
    steps = (_grid_step(sz, 2.0), _grid_step(sy, 2.0), _grid_step(sx, 2.0))
    pad = [int(np.ceil(MARGIN_MM / s)) + st for s, st in zip((sz, sy, sx), steps, strict=True)]
    nz = np.nonzero(mask)
    box = tuple(slice(max(int(idx.min()) - p, 0), int(idx.max()) + p + 1, st)
                for idx, p, st in zip(nz, pad, steps, strict=True))
    m, image = mask[box], volume.array[box]
    distance = ndimage.distance_transform_edt(
        ~m, sampling=[s * st for s, st in zip((sz, sy, sx), steps, strict=True)])
    shell = (distance > 0) & (distance <= MARGIN_MM)
    if not shell.any():
        return None
    return float((image[shell] < AIR_HU).mean())


def check_result(volume: Volume, mask: npt.NDArray[Any], use: IntendedUse) -> list[str]:
    """Reasons why a predicted ``mask`` (non-zero = the object) does not look like ``use``."""
    reasons = []
    fg = np.asarray(mask) != 0
    ml = float(fg.sum()) * float(np.prod(volume.geometry.spacing)) / 1000.0
    trained = use.trained_on
    if use.max_volume_ml is not None and ml > use.max_volume_ml:
        seen = trained.get("tumour_volume_ml")
        reasons.append(f"the predicted tumour is {ml:.0f} mL, larger than any the model was "
                       "trained on" + (f" ({seen[0]:.0f}-{seen[1]:.0f} mL)" if seen else ""))
    if use.max_air_margin is not None:
        frac = air_margin(volume, fg)
        if frac is not None and frac > use.max_air_margin:
            seen = trained.get("air_margin")
            reasons.append(f"{frac:.0%} of the tissue around the predicted mask is air or lung"
                           + (f" (around the training tumours at most {seen[1]:.0%})"
                              if seen else ""))
    return reasons


def warning_line(model_ref: str, use: IntendedUse, reasons: list[str]) -> str:
    """One line for the CLI and the status bar: which model, what it is for, why not here."""
    what = f" ({use.modality} of {use.body_region})" if use.body_region else ""
    return (f"outside what {model_ref} was trained for{what}: " + "; ".join(reasons))
