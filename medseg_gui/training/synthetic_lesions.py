"""Synthetic lung and liver lesions inserted into real CT, with their masks as labels.

The training data of the promptable model hold no lung or liver tumour and there is no
licence-clean labelled set of them, so lesions are drawn into the lungs and livers of CTs we may
train on, following the label-free tumour synthesis of Hu et al. (CVPR 2023): a shape (an
ellipsoid with random axes and orientation, deformed by a smooth random displacement; a union of
overlapping blobs for lobulated masses; thin tapering spikes for some spiculated lung nodules),
a texture (Gaussian-filtered noise), a margin (a logistic edge of 0.4-1.5 mm for solid lung
lesions, 1.5-4 mm for ground glass, 1-3 mm in liver) and an attenuation drawn from the ranges
below, clipped to the organ's mask (a lesion placed at the pleura or the liver capsule is cut
flat against it: the juxtapleural case), with CT noise matched to the host's (its robust
high-pass sd in the organ; for solid lung lesions in the host's soft tissue), so a lesion is
never smoother than the tissue around it. Contrast is to the parenchyma round each lesion.

Ranges (:data:`PARAMETERS`; HU, mm)

* Lung, solid nodules and masses: mean -100..+80 HU, centred in aerated lung (-950..-650 HU
  after a 2 mm blur: the published -900..-700 HU with some slack); part-solid (a ground-glass
  halo round a solid core) and pure ground-glass: -750..-350 HU and at least 100 HU above the
  lung round it, added to the host so vessels stay visible; masses >= 30 mm may have a necrotic
  core of 0..+30 HU (fluid), always at least 15 HU below the rim; diameter 3..120 mm,
  log-normal with median 18 mm (most 8..60 mm); 30 % are placed to touch the pleura or
  mediastinum (about 20 % find room). (Fleischner Society glossary, Hansell et al., Radiology
  2008; Fleischner guidelines for incidental nodules, MacMahon et al., Radiology 2017; Lung-RADS
  v2022, ACR; density of solid nodules, Swensen et al., Radiology 2000.)
* Liver, portal-venous phase: metastases 15..70 HU below the parenchyma (30..70 under 15 mm:
  the small ones that get outlined are the conspicuous ones), never below +10 HU (a cyst), some
  with an enhancing rim 5..25 HU above the parenchyma (target appearance) or a hypodense
  necrotic centre; HCC-like lesions -5..+20 HU from the parenchyma with a mosaic texture and an
  enhancing capsule (1.5..3 mm, 10..30 HU above the parenchyma); diameter 5..120 mm, log-normal
  with median 22 mm; margins 1..3 mm. (Sica et al., "CT and MR imaging of hepatic metastases", AJR
  2000; Namasivayam et al., "Imaging of liver metastases", Cancer Imaging 2007; LI-RADS v2018
  CT/MRI core, ACR, for capsule and washout; Hu et al., CVPR 2023, for the shape and texture.)

The generator works in millimetres, so the same seed draws the same kinds of lesions on any grid:
training cases are drawn on the stored grid of a prepared set, evaluation cases on the host's
own grid. Everything is seeded through one :class:`numpy.random.Generator`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

GENERATOR_VERSION = "synthetic-lesions/4"
FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

PARAMETERS: dict[str, Any] = {
    "lung": {
        "host_hu": [-900, -700], "diameter_mm": [3, 120], "median_mm": 18, "log_sd": 0.75,
        "subtypes": {"solid": 0.52, "spiculated": 0.22, "part_solid": 0.15,
                     "ground_glass": 0.11},
        "solid_hu": [-100, 80], "ground_glass_hu": [-750, -350],
        "ground_glass_above_lung_hu_min": 100,
        "necrotic_core_hu": [0, 30], "necrosis_odds_over_30mm": 0.45,
        "juxtapleural_odds": 0.30, "margin_mm": [0.4, 1.5], "ground_glass_margin_mm": [1.5, 4],
        "texture_sd_hu": [8, 22], "ground_glass_texture_sd_hu": [25, 60], "spikes": [6, 18],
        "roughness": [0.07, 0.2],
    },
    "liver": {
        "diameter_mm": [5, 120], "median_mm": 22, "log_sd": 0.7,
        "subtypes": {"metastasis": 0.45, "rim_metastasis": 0.2, "necrotic_metastasis": 0.15,
                     "hcc": 0.2},
        "metastasis_below_hu": [15, 70], "rim_above_lesion_hu": [15, 45],
        "rim_above_parenchyma_hu": [5, 25], "small_metastasis_below_hu_min": 30,
        "necrosis_below_lesion_hu": [10, 30], "hcc_delta_hu": [-5, 20],
        "capsule_above_parenchyma_hu": [10, 30],
        "capsule_mm": [1.5, 3.0], "subcapsular_odds": 0.25,
        "margin_mm": [1, 3], "texture_sd_hu": [4, 12], "hcc_texture_sd_hu": [10, 20],
        "roughness": [0.03, 0.1],
    },
    "inside_fraction_min": 0.55, "gap_mm": 2.0, "tries": 40,
}
KINDS = {"lung": "lung_lesion", "liver": "liver_lesion"}


@dataclass
class Lesion:
    """One inserted lesion: what was drawn and where its mask lies.

    ``box`` is ``[k0, k1) x [j0, j1) x [i0, i1)`` on the grid it was drawn on and ``mask`` the
    label inside it; ``host_hu`` is the parenchyma's attenuation round it (the median of the
    organ's voxels in and near it) and ``mean_hu`` the attenuation the lesion body was given
    (before texture, rim, core and noise).
    """

    organ: str
    subtype: str
    diameter_mm: float
    centre_kji: tuple[int, int, int]
    host_hu: float
    mean_hu: float
    box: tuple[int, int, int, int, int, int]
    mask: BoolArray = field(repr=False)
    touches_border: bool = False
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return KINDS[self.organ]

    @property
    def contrast_hu(self) -> float:
        return self.mean_hu - self.host_hu

    def full_mask(self, shape: Sequence[int]) -> BoolArray:
        """The label on the whole grid."""
        out = np.zeros(tuple(shape), dtype=bool)
        k0, k1, j0, j1, i0, i1 = self.box
        out[k0:k1, j0:j1, i0:i1] = self.mask
        return out

    def to_json(self, spacing_kji: Sequence[float]) -> dict[str, Any]:
        voxels = int(self.mask.sum())
        return {"kind": self.kind, "subtype": self.subtype,
                "diameter_mm": round(self.diameter_mm, 1),
                "volume_ml": round(voxels * float(np.prod(spacing_kji)) / 1000.0, 3),
                "centre_kji": list(self.centre_kji), "host_hu": round(self.host_hu, 1),
                "mean_hu": round(self.mean_hu, 1), "juxta": self.touches_border,
                **{k: round(v, 2) for k, v in self.extra.items()}}


# -- host statistics -------------------------------------------------------------------------
def highpass_sd(hu: FloatArray, where: BoolArray) -> float:
    """Robust sd (1.4826 MAD) of ``hu`` minus its 3x3x3 mean, over ``where``: the host's noise,
    little affected by vessels and edges."""
    hp = hu - ndimage.uniform_filter(hu, 3)
    vals = hp[where]
    if vals.size < 50:
        return 0.0
    return float(1.4826 * np.median(np.abs(vals - np.median(vals))))


def matched_noise(shape: Sequence[int], target_sd: float, rng: np.random.Generator,
                  sigma_vox: float = 0.6) -> FloatArray:
    """Slightly correlated Gaussian noise whose :func:`highpass_sd` equals ``target_sd``."""
    n = ndimage.gaussian_filter(rng.standard_normal(tuple(shape)).astype(np.float32), sigma_vox)
    got = highpass_sd(n, np.ones(n.shape, dtype=bool))
    out: FloatArray = (n * (target_sd / got if got > 0 else 0.0)).astype(np.float32)
    return out


def smooth_field(shape: Sequence[int], sigma_vox: Sequence[float],
                 rng: np.random.Generator) -> FloatArray:
    """Gaussian-filtered white noise, rescaled to zero mean and unit sd."""
    sig = np.asarray(sigma_vox, dtype=np.float64)
    step = np.maximum(np.floor(sig / 2.0), 1.0)  # a wide field is drawn coarsely, then zoomed
    if np.all(step == 1):
        n = ndimage.gaussian_filter(rng.standard_normal(tuple(shape)).astype(np.float32),
                                    sigma_vox, mode="wrap")
    else:
        small = np.ceil(np.asarray(shape) / step).astype(int) + 1
        n = ndimage.gaussian_filter(rng.standard_normal(tuple(small)).astype(np.float32),
                                    sig / step, mode="wrap")
        n = ndimage.zoom(n, np.asarray(shape) / small, order=1, grid_mode=True,
                         mode="grid-wrap")[:shape[0], :shape[1], :shape[2]]
    sd = float(n.std())
    out: FloatArray = ((n - n.mean()) / (sd if sd > 0 else 1.0)).astype(np.float32)
    return out


def soft_tissue_noise(hu: FloatArray, body: BoolArray) -> float:
    """The host's noise in homogeneous soft tissue (-150..150 HU, away from edges)."""
    smooth = ndimage.uniform_filter(hu, 5)
    soft = body & (smooth > -150) & (smooth < 150) & (np.abs(hu - smooth) < 150)
    soft = ndimage.binary_erosion(soft, iterations=2)
    return highpass_sd(hu, soft)


# -- shape -----------------------------------------------------------------------------------
def _rotation(rng: np.random.Generator) -> npt.NDArray[np.float64]:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    out: npt.NDArray[np.float64] = q * np.sign(np.diag(r))
    return out


def _unit(rng: np.random.Generator) -> npt.NDArray[np.float64]:
    v = rng.standard_normal(3)
    out: npt.NDArray[np.float64] = v / np.linalg.norm(v)
    return out


def shape_level(coords: npt.NDArray[np.float32], radius: float, rng: np.random.Generator, *,
                lobes: int, spikes: int, roughness: float,
                spacing_kji: Sequence[float]) -> FloatArray:
    """An approximate signed distance (mm, positive inside) of a random lesion shape.

    ``coords`` is ``(3, D, H, W)`` mm from the lesion's centre. The main body is an ellipsoid with
    semi-axes ``radius`` times 0.7..1.3 (slightly flattened along z less often than not), joined
    (max) by ``lobes`` smaller ellipsoids centred on its surface and ``spikes`` tapering tubes;
    the whole is displaced by a smooth random field of sd ``roughness * radius``.
    """
    shape = coords.shape[1:]
    level = np.full(shape, -1e6, dtype=np.float32)
    blobs = [(np.zeros(3), radius * rng.uniform(0.72, 1.28, 3))]
    for _ in range(lobes):
        u = _unit(rng)
        blobs.append((u * radius * rng.uniform(0.45, 0.8),
                      radius * rng.uniform(0.35, 0.7) * rng.uniform(0.8, 1.2, 3)))
    flat = coords.reshape(3, -1).astype(np.float64)
    for centre, axes in blobs:
        rot = _rotation(rng)
        local = rot.T @ (flat - centre[:, None])
        q = np.sqrt(((local / axes[:, None]) ** 2).sum(axis=0))
        blob = ((1.0 - q) * axes.mean()).reshape(shape).astype(np.float32)
        np.maximum(level, blob, out=level)
    for _ in range(spikes):
        u = _unit(rng)
        start = u * radius * 0.7
        length = min(radius * rng.uniform(0.4, 1.1), 18.0)
        r0 = rng.uniform(0.7, 1.4)
        rel = flat - start[:, None]
        t = np.clip(u @ rel / length, 0.0, 1.0)
        dist = np.linalg.norm(rel - np.outer(u, t * length), axis=0)
        tube = (r0 * (1.0 - 0.8 * t) - dist).reshape(shape).astype(np.float32)
        np.maximum(level, tube, out=level)
    if roughness > 0:
        sigma = [max(0.3 * radius / s, 0.8) for s in spacing_kji]
        level += roughness * radius * smooth_field(shape, sigma, rng)
        fine = [max(0.12 * radius / s, 1.0) for s in spacing_kji]
        level += 0.5 * roughness * radius * smooth_field(shape, fine, rng)
    return level


def _logistic(x: FloatArray, width: float) -> FloatArray:
    """0..1 edge of 10-90 % width ``width`` (mm) round ``x = 0``."""
    out: FloatArray = (1.0 / (1.0 + np.exp(-np.clip(x * (4.4 / max(width, 1e-3)), -30,
                                                      30)))).astype(np.float32)
    return out


# -- drawing what to insert --------------------------------------------------------------------
def _pick(rng: np.random.Generator, odds: dict[str, float]) -> str:
    names = list(odds)
    p = np.asarray([odds[n] for n in names], dtype=np.float64)
    return str(names[int(rng.choice(len(names), p=p / p.sum()))])


def draw_diameter(organ: str, rng: np.random.Generator) -> float:
    """A lesion diameter (mm) from the organ's log-normal, within its range."""
    p = PARAMETERS[organ]
    lo, hi = p["diameter_mm"]
    while True:
        d = float(np.exp(np.log(p["median_mm"]) + p["log_sd"] * rng.standard_normal()))
        if lo <= d <= hi:
            return d


@dataclass
class OrganHost:
    """An organ of a host CT to draw lesions into (``hu`` and ``organ`` on the same grid)."""

    organ: str  # "lung" or "liver"
    mask: BoolArray
    reference_hu: float
    noise_sd: float
    inside_mm: FloatArray  # distance (mm) from each organ voxel to the organ's border
    clip: bool = True  # whether the mask's border is the organ's (lesions may be cut by it)
    centres: BoolArray | None = None  # where a lesion may be centred (default: the mask)

    @staticmethod
    def of(organ: str, hu: FloatArray, mask: BoolArray, spacing_kji: Sequence[float], *,
           clip: bool = True, noise_sd: float | None = None) -> OrganHost:
        """Statistics of ``organ`` (``mask`` on ``hu``'s grid). ``clip=False`` for a mask whose
        border is only approximately the organ's (a heuristic): lesions then stay inside it
        whole, never cut flat against it. ``noise_sd`` overrides the noise measured in the
        organ (in lung the high-pass holds vessels and septa, not only noise: a solid lesion
        there takes the noise of the host's soft tissue, :func:`soft_tissue_noise`)."""
        core = ndimage.binary_erosion(mask, iterations=1)
        core = core if core.sum() > 200 else mask
        vals = hu[core]
        ref = float(np.median(vals)) if vals.size else 0.0
        if organ == "liver":  # parenchyma only: not vessels, not hypodense lesions
            vals = vals[np.abs(vals - ref) < 40]
            ref = float(np.median(vals)) if vals.size else ref
        sd = highpass_sd(hu, core) if noise_sd is None else noise_sd
        dist = ndimage.distance_transform_edt(mask, sampling=spacing_kji).astype(np.float32)
        centres = None
        if organ == "lung":  # aerated lung (the published range, a little wider), not
            # atelectasis, consolidation, the hilum's large vessels or emphysematous bullae
            lo, hi = PARAMETERS["lung"]["host_hu"]
            smooth = ndimage.gaussian_filter(hu, sigma=tuple(2.0 / np.asarray(spacing_kji)))
            centres = mask & (smooth > lo - 50) & (smooth < hi + 50)
        return OrganHost(organ, mask, ref, sd, dist, clip, centres)


def insert_lesions(hu: FloatArray, hosts: Sequence[tuple[OrganHost, int]],
                   spacing_kji: Sequence[float], rng: np.random.Generator, *,
                   exclude: BoolArray | None = None,
                   min_voxels: int = 1) -> tuple[FloatArray, list[Lesion]]:
    """Insert ``count`` lesions into each organ of ``hosts``; they never overlap.

    Parameters
    ----------
    hu
        The host CT, ``(k, j, i)`` HU; not modified.
    hosts
        ``(organ, count)`` pairs.
    spacing_kji
        Voxel size (mm) along the array axes.
    rng
        The only source of randomness.
    exclude
        Voxels no lesion may cover (e.g. real lesions of an unlabeled host).
    min_voxels
        A lesion whose label has fewer voxels on this grid is redrawn (never left in the CT
        without a label).

    Returns
    -------
    The new CT and the lesions (a lesion that found no place after
    ``PARAMETERS["tries"]`` tries is left out, so fewer than asked may come back).
    """
    out = np.array(hu, dtype=np.float32, copy=True)
    sp = np.asarray(spacing_kji, dtype=np.float64)
    taken = np.zeros(hu.shape, dtype=bool) if exclude is None else exclude.copy()
    gap = max(1, int(np.ceil(PARAMETERS["gap_mm"] / sp.min())))
    lesions: list[Lesion] = []
    for host, count in hosts:
        for _ in range(count):
            lesion = _place_one(out, host, sp, rng, taken, min_voxels)
            if lesion is None:
                continue
            k0, _, j0, _, i0, _ = lesion.box
            grown = ndimage.binary_dilation(np.pad(lesion.mask, gap), iterations=gap)
            lo = np.array([k0, j0, i0]) - gap
            sl = tuple(slice(max(a, 0), min(a + n, s)) for a, n, s in
                       zip(lo, grown.shape, hu.shape, strict=True))
            cut = tuple(slice(s.start - a, s.stop - a) for s, a in zip(sl, lo, strict=True))
            taken[sl] |= grown[cut]
            lesions.append(lesion)
    return out, lesions


def _place_one(out: FloatArray, host: OrganHost, sp: npt.NDArray[np.float64],
               rng: np.random.Generator, taken: BoolArray, min_voxels: int) -> Lesion | None:
    p = PARAMETERS[host.organ]
    subtype = _pick(rng, p["subtypes"])
    diameter = draw_diameter(host.organ, rng)
    juxta_odds = p.get("juxtapleural_odds", p.get("subcapsular_odds", 0.0)) if host.clip else 0.0
    free = (host.mask if host.centres is None else host.centres) & ~taken
    for attempt in range(PARAMETERS["tries"]):
        if attempt and attempt % 8 == 0:  # no room: a smaller one
            diameter = max(diameter * 0.75, p["diameter_mm"][0])
        radius = diameter / 2
        juxta = bool(rng.random() < juxta_odds)
        if juxta:
            cand = free & (host.inside_mm > 0.15 * radius) & (host.inside_mm < 0.75 * radius)
        else:  # a heuristic border is never cut: the whole lesion (lobes too) inside it
            cand = free & (host.inside_mm >= (0.85 if host.clip else 1.25) * radius)
        idx = np.flatnonzero(cand)
        if idx.size == 0:
            continue
        centre = np.array(np.unravel_index(int(idx[rng.integers(idx.size)]), out.shape))
        lesion = _render(out, host, sp, rng, centre, diameter, subtype, taken, min_voxels)
        if lesion is not None:
            lesion.touches_border = juxta
            return lesion
    return None


def _render(out: FloatArray, host: OrganHost, sp: npt.NDArray[np.float64],
            rng: np.random.Generator, centre: npt.NDArray[np.int64], diameter: float,
            subtype: str, taken: BoolArray, min_voxels: int) -> Lesion | None:
    """Draw one lesion at ``centre``; write it into ``out`` only if it fits its organ."""
    radius = diameter / 2
    p = PARAMETERS[host.organ]
    half = np.ceil((radius * 1.9 + 4.0) / sp).astype(int)
    lo = np.maximum(centre - half, 0)
    hi = np.minimum(centre + half + 1, np.asarray(out.shape))
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    axes = [(np.arange(a, b, dtype=np.float32) - c) * s
            for a, b, c, s in zip(lo, hi, centre, sp, strict=True)]
    coords = np.stack(np.meshgrid(*axes, indexing="ij"))
    lung = host.organ == "lung"
    big = diameter >= 30
    lobed = diameter >= 15 and rng.random() < (0.75 if lung else 0.5)
    lobes = int(rng.integers(1, 6)) if lobed else int(rng.random() < 0.3)
    spikes = int(rng.integers(*p["spikes"])) if lung and subtype == "spiculated" else 0
    roughness = rng.uniform(*p["roughness"])
    if diameter < 12:  # small nodules are mostly round and smooth
        lobes, roughness = 0, roughness * max(diameter / 12, 0.4)
    level = shape_level(coords, radius, rng, lobes=lobes, spikes=spikes, roughness=roughness,
                        spacing_kji=tuple(sp.tolist()))
    ggo = lung and subtype in ("part_solid", "ground_glass")
    margin = rng.uniform(*p["ground_glass_margin_mm" if ggo else "margin_mm"])
    organ = host.mask[box]
    occ = _logistic(level, max(margin, float(sp[1:].min()))) * organ
    occ[occ < 1e-3] = 0.0  # the CT beyond the margin stays exactly as it was
    label = occ >= 0.5
    if label.sum() < max(min_voxels, 1):
        return None
    whole = float((_logistic(level, 0.6 * float(sp.min())) >= 0.5).sum())
    need = PARAMETERS["inside_fraction_min"] if host.clip else 0.97
    if label.sum() < need * whole or (label & taken[box]).any():
        return None
    shape = occ.shape
    tex_sd = rng.uniform(*p["texture_sd_hu"])
    tex_sigma = [max(rng.uniform(1.0, 3.0) / s, 0.4) for s in sp]
    texture = smooth_field(shape, tex_sigma, rng)
    noise = matched_noise(shape, host.noise_sd, rng)
    host_box = out[box]
    extra: dict[str, float] = {}
    core_depth = rng.uniform(0.3, 0.55) * radius
    core = _logistic(level - core_depth, max(1.5, 0.15 * radius))
    # the contrast is to the parenchyma round the lesion (livers and lungs are not uniform:
    # partial volume at the edges, dependent lung, an unenhanced segment)
    near = organ & (level > -0.5 * radius - 3.0)
    vals = host_box[near]
    ref = float(np.median(vals)) if vals.size >= 20 else host.reference_hu
    if abs(ref - host.reference_hu) > 40:  # a vessel or a real lesion: the organ's median
        ref = host.reference_hu
    if lung:
        if subtype in ("solid", "spiculated"):
            mean = rng.uniform(*p["solid_hu"])
            body = mean + tex_sd * texture
            if big and rng.random() < p["necrosis_odds_over_30mm"]:
                core_hu = min(rng.uniform(*p["necrotic_core_hu"]), mean - 15)
                body = body + (core_hu - mean) * core
                extra["core_hu"] = core_hu
            new = host_box + occ * (body + noise - host_box)
        else:
            g_lo, g_hi = p["ground_glass_hu"]
            # at least 100 HU above the lung round it, or dense (dependent) lung hides it
            mean = rng.uniform(min(max(g_lo, ref + p["ground_glass_above_lung_hu_min"]), g_hi),
                               g_hi)
            tex_sd = rng.uniform(*p["ground_glass_texture_sd_hu"])  # haze is patchy
            solid_w = np.zeros(shape, np.float32)
            if subtype == "part_solid":
                solid_hu = rng.uniform(*p["solid_hu"])
                solid_w = core
                extra["solid_hu"] = solid_hu
                solid = solid_hu + 15.0 * texture + noise
            else:
                solid = np.zeros(shape, np.float32)
            # ground glass raises the lung's attenuation and keeps its vessels
            haze = host_box + (mean - ref) + tex_sd * texture
            haze = np.maximum(haze, host_box)
            body = haze * (1 - solid_w) + solid * solid_w
            new = host_box + occ * (body - host_box)
    else:
        if subtype == "hcc":
            mean = ref + rng.uniform(*p["hcc_delta_hu"])
            tex_sd = rng.uniform(*p["hcc_texture_sd_hu"])
            body = mean + tex_sd * texture
            cap_mm = rng.uniform(*p["capsule_mm"])
            shell = _logistic(level, 1.0) * (1 - _logistic(level - cap_mm, 1.0))
            cap = ref + rng.uniform(*p["capsule_above_parenchyma_hu"])
            body = body + (cap - body) * shell
            extra["capsule_hu"] = cap
        else:
            d_lo, d_hi = p["metastasis_below_hu"]
            if diameter < 15:  # a small metastasis that gets seen (and outlined) is a dark one
                d_lo = p["small_metastasis_below_hu_min"]
            # not below +10 HU: darker than that reads as a cyst, not a metastasis
            mean = ref - rng.uniform(d_lo, max(min(d_hi, ref - 10.0), d_lo))
            body = mean + tex_sd * texture
            if subtype == "rim_metastasis":
                rim_mm = rng.uniform(2.0, 5.0) if diameter > 12 else 1.5
                inner = _logistic(level - rim_mm, 1.5)
                # the rim enhances: brighter than the lesion and a little above the liver,
                # so the ring that belongs to the lesion is visible
                rim = max(mean + rng.uniform(*p["rim_above_lesion_hu"]),
                          ref + rng.uniform(*p["rim_above_parenchyma_hu"]))
                body = body + (rim - mean) * (1 - inner)
                extra["rim_hu"] = rim
            elif subtype == "necrotic_metastasis":
                core_hu = max(mean - rng.uniform(*p["necrosis_below_lesion_hu"]), 5.0)
                body = body + (core_hu - mean) * core
                extra["core_hu"] = core_hu
        new = host_box + occ * (body + noise - host_box)
    out[box] = new.astype(np.float32)
    nz = np.argwhere(label)
    a, b = nz.min(axis=0), nz.max(axis=0) + 1
    gbox = (int(lo[0] + a[0]), int(lo[0] + b[0]), int(lo[1] + a[1]), int(lo[1] + b[1]),
            int(lo[2] + a[2]), int(lo[2] + b[2]))
    mask = label[a[0]:b[0], a[1]:b[1], a[2]:b[2]]
    return Lesion(host.organ, subtype, diameter, (int(centre[0]), int(centre[1]),
                                                  int(centre[2])),
                  ref, float(mean), gbox, mask, extra=extra)
