"""Host CTs for synthetic lesions and their lungs and livers.

Hosts (``../shared/data``; ``ibsi_lung`` is never read: evaluation only):

* ``totalseg_3mm`` (train) and ``totalseg_dicom`` (test): TotalSegmentator's labels give the
  liver (5) and the five lung lobes (10..14).
* ``crlm_1004`` (train) and ``crlm_1006`` (test): unlabeled abdominal CTs (portal-venous phase),
  masks by :func:`lungs_by_threshold` and :func:`liver_by_heuristic`.
* ``openkbp_N``: the lung apices in the lowest slices of the head-and-neck CTs, by
  :func:`lungs_by_threshold`; each inherits its patient's split in
  :func:`~.interactive_data.shared_sources`.

All masks are computed on LPS-aligned arrays (``(k, j, i)``, ``k`` towards superior, ``i`` towards
the patient's left).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from medseg_gui.training.interactive_data import TOTALSEG_NAMES, shared_sources

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float32]
LIVER_LABEL = TOTALSEG_NAMES.index("liver") + 1
LUNG_LABELS = tuple(TOTALSEG_NAMES.index(n) + 1 for n in (
    "lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right",
    "lung_middle_lobe_right", "lung_lower_lobe_right"))
MIN_ORGAN_ML = {"lung": 15.0, "liver": 60.0}


@dataclass(frozen=True)
class Host:
    """A CT to insert lesions into: ``labels`` is a TotalSegmentator label map, or ``None`` when
    the organs come from thresholds; ``organs`` are the organs that may receive lesions."""

    host_id: str
    split: str
    image: Path
    labels: Path | None
    organs: tuple[str, ...]


def synthetic_hosts(shared: str | Path, *, splits: Sequence[str] = ("train",)) -> list[Host]:
    """The hosts of ``shared`` in ``splits`` (see the module docstring)."""
    root = Path(shared)
    ts = root / "totalseg_example"
    crlm = root / "crlm_unlabeled"
    out = [Host("totalseg_3mm", "train", ts / "example_ct_sm.nii.gz", ts / "example_seg.nii.gz",
                ("lung", "liver")),
           Host("totalseg_dicom", "test", ts / "example_ct_dicom", ts / "example_seg_dicom.nii.gz",
                ("lung", "liver")),
           Host("crlm_1004", "train", crlm / "CRLM-CT-1004" / "image", None, ("lung", "liver")),
           Host("crlm_1006", "test", crlm / "CRLM-CT-1006" / "image", None, ("lung", "liver"))]
    for src in shared_sources(root, splits=("train", "validation", "test")):
        if src.collection == "openkbp":
            out.append(Host(src.case_id, src.split, src.image, None, ("lung",)))
    return [h for h in out if h.split in splits and h.image.exists()]


# -- masks from labels -------------------------------------------------------------------------
def organs_from_labels(labels: npt.NDArray[np.integer]) -> dict[str, BoolArray]:
    """Lung (lobes 10..14) and liver (5) of a TotalSegmentator label map."""
    return {"lung": np.isin(labels, LUNG_LABELS), "liver": labels == LIVER_LABEL}


# -- masks from thresholds ---------------------------------------------------------------------
def body_mask(hu: FloatArray) -> BoolArray:
    """The patient: the largest component above -500 HU, holes filled slice by slice."""
    body = hu > -500
    parts, n = ndimage.label(body)
    if n == 0:
        return body
    sizes = ndimage.sum_labels(np.ones_like(parts), parts, range(1, n + 1))
    body = parts == int(np.argmax(sizes)) + 1
    return np.stack([ndimage.binary_fill_holes(s) for s in body])


def lungs_by_threshold(hu: FloatArray, spacing_kji: Sequence[float]) -> BoolArray:
    """Aerated lung: air (< -400 HU) inside the body, without the airways and bowel gas.

    A 3D air component is lung when it holds at least 15 mL, its median is lung parenchyma
    (-950..-600 HU, where bowel gas and the airways are nearer -1000) and it lies off the midline
    (the trachea and pharynx are central tubes). Axial pieces under 3 cm^2 near the midline (the
    trachea and main bronchi, joined to the lungs lower down) are cut first; vessels are filled in.
    """
    sp = np.asarray(spacing_kji, dtype=np.float64)
    body = body_mask(hu)
    air = (hu < -400) & body
    air &= ~ndimage.binary_dilation(~body, iterations=1)  # not the skin line
    voxel_mm2 = sp[1] * sp[2]
    centre_i = _midline(body)
    for k in range(air.shape[0]):  # the airways: small central pieces of each slice
        parts, n = ndimage.label(air[k])
        if n == 0:
            continue
        sizes = ndimage.sum_labels(np.ones_like(parts), parts, range(1, n + 1)) * voxel_mm2
        cents = ndimage.center_of_mass(np.ones_like(parts), parts, range(1, n + 1))
        for m, (size, c) in enumerate(zip(sizes, cents, strict=True)):
            if size < 300 and abs(c[1] - centre_i) * sp[2] < 30:
                air[k][parts == m + 1] = False
    parts, n = ndimage.label(air)
    lung = np.zeros_like(air)
    voxel_ml = float(np.prod(sp)) / 1000.0
    for m in range(1, n + 1):
        comp = parts == m
        vol = comp.sum() * voxel_ml
        if vol < MIN_ORGAN_ML["lung"]:
            continue
        med = float(np.median(hu[comp]))
        ci = float(np.mean(np.nonzero(comp)[2]))
        lateral = abs(ci - centre_i) * sp[2] > 25 or vol > 500
        if -925 <= med <= -600 and np.percentile(hu[comp], 10) > -960 and lateral:
            lung |= comp
    lung = ndimage.binary_closing(lung, structure=np.ones((1, 3, 3)), iterations=2) | lung
    lung = np.stack([fill_small(s, 200.0 / voxel_mm2) for s in lung])  # vessels: lung
    return lung & body


def fill_small(mask2d: BoolArray, max_voxels: float) -> BoolArray:
    """``mask2d`` with its holes under ``max_voxels`` filled (vessels, not the mediastinum
    between two lungs that touch)."""
    holes = ndimage.binary_fill_holes(mask2d) & ~mask2d
    parts, n = ndimage.label(holes)
    if n == 0:
        return mask2d
    sizes = ndimage.sum_labels(np.ones_like(parts), parts, range(1, n + 1))
    small = np.flatnonzero(sizes <= max_voxels) + 1
    out: BoolArray = mask2d | np.isin(parts, small)
    return out


def _midline(body: BoolArray) -> float:
    cols = np.nonzero(body.any(axis=(0, 1)))[0]
    return float((cols[0] + cols[-1]) / 2) if cols.size else body.shape[2] / 2


def liver_by_heuristic(hu: FloatArray, spacing_kji: Sequence[float],
                       lung: BoolArray | None = None) -> BoolArray:
    """The liver of a contrast-enhanced abdominal CT, or an empty mask when none is found.

    The liver's attenuation is the mode of smoothed soft tissue (60..200 HU) in the patient's
    right upper quadrant, the slices just below the base of the right lung; the liver is the
    tissue within -25..+30 HU of it, opened by a 9 mm ball to cut its links to the heart, bowel,
    kidney, vessels and muscle; the largest piece on the patient's right; grown back into that
    tissue by at most 9 mm in-plane, closed, its holes (vessels, lesions) filled per slice; and
    in the slices that are mostly lung (the dome) only what lies right of the midline, so the
    heart is not taken for it.
    """
    sp = np.asarray(spacing_kji, dtype=np.float64)
    empty = np.zeros(hu.shape, dtype=bool)
    body = body_mask(hu)
    if lung is None:
        lung = lungs_by_threshold(hu, tuple(sp.tolist()))
    centre_i = _midline(body)
    right = np.zeros_like(body)
    right[:, :, :int(centre_i)] = True
    right_lung = (lung & right).sum(axis=(1, 2))
    if right_lung.max() == 0:
        return empty
    base = int(np.nonzero(right_lung > 0.05 * right_lung.max())[0][0])  # lowest lung slice
    span = max(1, round(60.0 / sp[0]))
    smooth = ndimage.gaussian_filter(hu, sigma=tuple(1.5 / sp))
    quad = np.zeros_like(body)
    quad[max(base - span, 0):base + max(1, round(15.0 / sp[0])) + 1] = True
    quad &= right & body & ~ndimage.binary_dilation(lung, iterations=2)
    soft = smooth[quad & (smooth > 60) & (smooth < 200)]
    if soft.size < 1000:
        return empty
    hist, edges = np.histogram(soft, bins=70, range=(60, 200))
    hist = ndimage.uniform_filter1d(hist.astype(np.float64), 3)
    mode = float(edges[int(np.argmax(hist))] + 1.0)
    tissue = body & (smooth > mode - 25) & (smooth < mode + 30)
    core = ndimage.binary_opening(tissue, structure=_ball(9.0, sp))
    parts, _ = ndimage.label(core)
    best, best_size = 0, 0.0
    for m, sl in enumerate(ndimage.find_objects(parts), start=1):
        if sl is None:
            continue
        comp = parts[sl] == m
        in_right = float((comp & right[sl]).sum())
        if in_right > 0.6 * comp.sum() and in_right > best_size:
            best, best_size = m, in_right
    if best == 0 or best_size * np.prod(sp) / 1000 < MIN_ORGAN_ML["liver"]:
        return empty
    liver = parts == best
    for _ in range(int(np.ceil(9.0 / sp[1:].min()))):  # geodesic growth back into the tissue
        liver = ndimage.binary_dilation(liver, structure=np.ones((1, 3, 3))) & tissue
    liver = ndimage.binary_closing(liver, structure=_ball(4.0, sp), iterations=1)
    liver = np.stack([ndimage.binary_fill_holes(s) for s in liver]) & body
    liver &= ~ndimage.binary_dilation(lung, iterations=2)
    lung_area = lung.sum(axis=(1, 2))
    dome = lung_area > 0.3 * lung_area.max()
    liver[dome] &= right[dome]
    return _track(liver)


def _track(mask: BoolArray, overlap: float = 0.5) -> BoolArray:
    """Keep, slice by slice away from the largest slice, only the 2D pieces that lie mostly on
    what was kept in the slice before: an organ's cross-sections follow each other, a leak into
    a neighbour (heart, duodenum) starts off to one side."""
    area = mask.sum(axis=(1, 2))
    if area.max() == 0:
        return mask
    start = int(np.argmax(area))
    kept = np.zeros_like(mask)
    kept[start] = mask[start]
    for ks in (range(start + 1, mask.shape[0]), range(start - 1, -1, -1)):
        for k in ks:
            prev = kept[k - 1] if k > start else kept[k + 1]
            parts, n = ndimage.label(mask[k])
            for m in range(1, n + 1):
                comp = parts == m
                if (comp & prev).sum() >= overlap * comp.sum():
                    kept[k] |= comp
    return kept


def _ball(radius_mm: float, sp: npt.NDArray[np.float64]) -> BoolArray:
    r = np.maximum(np.floor(radius_mm / sp), 0).astype(int)
    zz, yy, xx = np.ogrid[-r[0]:r[0] + 1, -r[1]:r[1] + 1, -r[2]:r[2] + 1]
    d = (zz * sp[0]) ** 2 + (yy * sp[1]) ** 2 + (xx * sp[2]) ** 2
    out: BoolArray = d <= radius_mm ** 2
    return out


def threshold_organs(hu: FloatArray, spacing_kji: Sequence[float],
                     organs: Sequence[str]) -> dict[str, BoolArray]:
    """The ``organs`` of an unlabeled host, by threshold (lung) and heuristic (liver)."""
    lung = lungs_by_threshold(hu, spacing_kji)
    out = {"lung": lung}
    if "liver" in organs:
        out["liver"] = liver_by_heuristic(hu, spacing_kji, lung)
    return {k: v for k, v in out.items() if k in organs}
