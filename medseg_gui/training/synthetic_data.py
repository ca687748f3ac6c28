"""Prepared cases of synthetic lung and liver lesions, in the format of :mod:`.interactive_data`.

Each case is one host CT (:mod:`.synthetic_hosts`) on its storage grid (the coarser of its own
spacing and the model's) with a few non-overlapping lesions drawn into it by
:mod:`.synthetic_lesions`: collection ``"synthetic"``, objects of kind ``"lung_lesion"`` and
``"liver_lesion"``, case ids ``synth_<host>_v<k>``. Several variants (seeds) per abdominal host
(8 by default: 15 MB for the train split),
one per OpenKBP patient (whose lung apices are small, and who are many); an OpenKBP host is cut
to its lung apices plus 60 mm above and below, which is more than a crop at zoom 1 reaches, so a
crop never sees the cut. Cases inherit their host's split.

A case's ``sources`` hold its host's hash (for a DICOM folder: the hash of its files' sorted
hashes) and ``generator``: the hash of the generator's version, seed, variant and
:data:`~.synthetic_lesions.PARAMETERS`, so the set's ``data_sha256`` changes when any of them
does; ``objects.json`` records them under ``"synthetic"`` with every lesion's draw.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.progress import Progress, check, no_progress
from medseg_gui.core.resample import resample_array
from medseg_gui.core.volume import Volume
from medseg_gui.training.interactive_data import (
    MANIFEST,
    CaseInfo,
    InteractiveSet,
    ObjectInfo,
    encode_hu,
    lps_aligned,
    open_interactive,
    write_case,
    write_manifest,
)
from medseg_gui.training.synthetic_hosts import (
    MIN_ORGAN_ML,
    Host,
    body_mask,
    fill_small,
    organs_from_labels,
    synthetic_hosts,
    threshold_organs,
)
from medseg_gui.training.synthetic_lesions import (
    GENERATOR_VERSION,
    PARAMETERS,
    Lesion,
    OrganHost,
    insert_lesions,
    soft_tissue_noise,
)

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float32]
COLLECTION = "synthetic"
DEFAULT_SEED = 2126
DEFAULT_VARIANTS = 8
LESIONS_PER_VARIANT = (3, 6)
OPENKBP_LESIONS = (1, 3)
OPENKBP_MARGIN_MM = 60.0
MIN_LESION_VOXELS = 4


@dataclass
class HostImage:
    """A host CT on some grid with its organs: HU ``(k, j, i)``, LPS-aligned."""

    host: Host
    hu: FloatArray
    geometry: Geometry
    organs: dict[str, OrganHost]
    exclude: BoolArray
    sources: dict[str, str]


def _hash_host(path: Path) -> str:
    from medseg_gui.inference.model_card import sha256_file

    if path.is_file():
        return sha256_file(path)
    lines = sorted(f"{p.relative_to(path)} {sha256_file(p)}" for p in path.rglob("*")
                   if p.is_file())
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def load_host(host: Host, spacing: Sequence[float], *, native: bool = False) -> HostImage:
    """A host's CT and organs on its storage grid for ``spacing`` (the coarser of the two per
    axis), or with ``native`` on its own (LPS-aligned) grid.

    On the native grid, a TotalSegmentator host uses its labels there; an unlabeled host's
    organs are found on the storage grid (the liver heuristic's 9 mm opening costs 20 s at
    0.8 mm), then resampled, and the lungs refined by the native threshold so their border
    (where juxtapleural lesions are cut) follows the native voxels.
    """
    from medseg_gui.io.loader import load_volume

    vol = load_volume(host.image)
    hu_native, native_grid = lps_aligned(vol.array.astype(np.float32), vol.geometry)
    store = native_grid.with_spacing(np.maximum(np.asarray(native_grid.spacing),
                                                np.asarray(spacing)))
    grid = native_grid if native else store
    hu = hu_native if grid is native_grid else resample_array(hu_native, native_grid, grid,
                                                              order=1)
    sp = grid.spacing[::-1]
    sources = {host.image.name: _hash_host(host.image)}
    if host.labels is not None:
        lab = load_volume(host.labels)
        if not lab.geometry.same_grid(vol.geometry, tol=1e-2):
            lab = lab.resample(vol.geometry, interpolation="nearest")
        labels = lps_aligned(lab.array, vol.geometry)[0]
        masks = {}
        for name, m in organs_from_labels(labels).items():
            masks[name] = m if grid is native_grid else resample_array(
                m.astype(np.float32), native_grid, grid, order=1) >= 0.5
        sources[host.labels.name] = _hash_host(host.labels)
        clip = True
    else:
        hu_store = hu if grid is store else resample_array(hu_native, native_grid, store,
                                                           order=1)
        masks = threshold_organs(hu_store, store.spacing[::-1], host.organs)
        if grid is not store:
            masks = {n: resample_array(m.astype(np.float32), store, grid, order=1) >= 0.5
                     for n, m in masks.items()}
            if "lung" in masks:
                masks["lung"] = refine_lung(hu, masks["lung"], sp)
        clip = False  # the heuristic liver's border is approximate; lungs' borders are air
    voxel_ml = float(np.prod(sp)) / 1000.0
    soft_sd = soft_tissue_noise(hu, body_mask(hu))
    organs = {}
    exclude = np.zeros(hu.shape, dtype=bool)
    for name in host.organs:
        found = masks.get(name)
        if found is None or found.sum() * voxel_ml < MIN_ORGAN_ML[name]:
            continue
        organ = OrganHost.of(name, hu, found, sp, clip=clip or name == "lung",
                             noise_sd=soft_sd if name == "lung" else None)
        organs[name] = organ
        if name == "liver":  # real hypodense lesions of the host: no lesion on top of them
            smooth = ndimage.gaussian_filter(hu, sigma=tuple(2.0 / np.asarray(sp)))
            exclude |= ndimage.binary_dilation(found & (smooth < organ.reference_hu - 30),
                                               iterations=2)
    return HostImage(host, hu, grid, organs, exclude, sources)


def refine_lung(hu: FloatArray, coarse: BoolArray, spacing_kji: Sequence[float]) -> BoolArray:
    """A lung mask resampled from a coarser grid, its border redrawn by the -400 HU threshold
    on this grid (vessels inside are kept)."""
    near = ndimage.binary_dilation(coarse, structure=np.ones((1, 3, 3)), iterations=2)
    air = near & (hu < -400)
    px = float(spacing_kji[1] * spacing_kji[2])
    out: BoolArray = np.stack([fill_small(s, 200.0 / px) for s in air]) & near
    return out


def crop_to_organs(image: HostImage, margin_mm: float) -> HostImage:
    """``image`` cut along ``k`` to its organs plus ``margin_mm`` either side."""
    any_organ = np.zeros(image.hu.shape, dtype=bool)
    for o in image.organs.values():
        any_organ |= o.mask
    ks = np.flatnonzero(any_organ.any(axis=(1, 2)))
    if ks.size == 0:
        return image
    pad = int(np.ceil(margin_mm / image.geometry.spacing[2]))
    k0, k1 = max(int(ks[0]) - pad, 0), min(int(ks[-1]) + pad + 1, image.hu.shape[0])
    sl = slice(k0, k1)
    g = image.geometry.crop((0, 0, k0), (image.hu.shape[2], image.hu.shape[1], k1))
    organs = {n: OrganHost(o.organ, o.mask[sl], o.reference_hu, o.noise_sd, o.inside_mm[sl],
                           o.clip, None if o.centres is None else o.centres[sl])
              for n, o in image.organs.items()}
    return HostImage(image.host, image.hu[sl], g, organs, image.exclude[sl], image.sources)


def lesion_counts(image: HostImage, rng: np.random.Generator) -> list[tuple[OrganHost, int]]:
    """How many lesions each organ of a host gets in one variant."""
    organs = list(image.organs.values())
    if not organs:
        return []
    lo, hi = OPENKBP_LESIONS if image.host.host_id.startswith("openkbp") else LESIONS_PER_VARIANT
    total = int(rng.integers(lo, hi + 1))
    if len(organs) == 1:
        return [(organs[0], total)]
    # both organs get one or more; the liver more (only two training hosts have a liver)
    lung = int(rng.integers(1, total // 2 + 1))
    by_name = {o.organ: o for o in organs}
    return [(by_name["lung"], lung), (by_name["liver"], total - lung)]


def variant_rng(seed: int, host_id: str, variant: int) -> np.random.Generator:
    """The generator of one variant: a pure function of the seed, the host and the variant."""
    h = int.from_bytes(hashlib.sha256(host_id.encode()).digest()[:4], "little")
    return np.random.default_rng([seed, h, variant])


def synthesize(image: HostImage, seed: int, variant: int) -> tuple[FloatArray, list[Lesion]]:
    """One variant of a host: the CT with its lesions, and the lesions (each of at least
    :data:`MIN_LESION_VOXELS` voxels on this grid)."""
    rng = variant_rng(seed, image.host.host_id, variant)
    return insert_lesions(image.hu, lesion_counts(image, rng), image.geometry.spacing[::-1],
                          rng, exclude=image.exclude, min_voxels=MIN_LESION_VOXELS)


def generator_digest(seed: int, variant: int) -> str:
    """The hash that stands for the generator in a case's ``sources``."""
    text = json.dumps({"version": GENERATOR_VERSION, "seed": seed, "variant": variant,
                       "parameters": PARAMETERS}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def case_arrays(hu: FloatArray, lesions: Sequence[Lesion],
                voxel_ml: float) -> tuple[dict[str, Any], list[ObjectInfo]]:
    """The stored arrays of a case and its objects (one per lesion, numbered per kind)."""
    arrays: dict[str, Any] = {"image": encode_hu(hu)}
    objects: list[ObjectInfo] = []
    per_kind: dict[str, int] = {}
    for les in lesions:
        per_kind[les.kind] = per_kind.get(les.kind, 0) + 1
        arrays[f"mask{len(objects)}"] = np.packbits(les.mask.ravel())
        voxels = int(les.mask.sum())
        objects.append(ObjectInfo(f"{les.kind}_{per_kind[les.kind]}", les.kind, les.box, voxels,
                                  round(voxels * voxel_ml, 3)))
    return arrays, objects


def prepare_synthetic(shared: str | Path, out: str | Path, spacing: Sequence[float], *,
                      splits: Sequence[str] = ("train",), seed: int = DEFAULT_SEED,
                      variants: int = DEFAULT_VARIANTS, progress: Progress = no_progress,
                      command: str = "", hosts: Sequence[Host] | None = None) -> InteractiveSet:
    """Write synthetic-lesion cases of the hosts of ``shared`` in ``splits`` into ``out``.

    Parameters
    ----------
    shared
        ``../shared/data``.
    out
        The prepared folder. If it already holds a set (e.g. from
        :func:`~.interactive_data.prepare_interactive`), its non-synthetic cases are kept and the
        synthetic ones replaced; ``data_sha256`` then covers both.
    spacing
        The model's spacing (mm, ``i, j, k``).
    splits
        Which hosts' splits to write.
    seed, variants
        The generator's seed, and how many variants each abdominal host gets (each OpenKBP
        patient gets one).
    hosts
        Instead of all hosts of ``shared`` (tests).
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    kept: list[CaseInfo] = []
    old: dict[str, Any] = {}
    if (folder / MANIFEST).is_file():
        prior = open_interactive(folder)
        kept = [c for c in prior.cases if c.collection != COLLECTION]
        old = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        command = " && ".join(c for c in (prior.command, command) if c)
    todo = list(hosts) if hosts is not None else synthetic_hosts(shared, splits=splits)
    cases: list[CaseInfo] = []
    drawn: dict[str, list[dict[str, Any]]] = {}
    dropped: dict[str, str] = {}
    for n, host in enumerate(todo):
        check(progress, n / max(len(todo), 1), f"synthetic lesions in {host.host_id}")
        image = load_host(host, spacing)
        if host.host_id.startswith("openkbp"):
            image = crop_to_organs(image, OPENKBP_MARGIN_MM)
        if not image.organs:
            dropped[host.host_id] = "no lung or liver found"
            continue
        sp = image.geometry.spacing[::-1]
        voxel_ml = float(np.prod(sp)) / 1000.0
        for v in range(1 if host.host_id.startswith("openkbp") else variants):
            hu, lesions = synthesize(image, seed, v)
            if not lesions:
                continue
            case_id = f"synth_{host.host_id}_v{v}"
            arrays, objects = case_arrays(hu, lesions, voxel_ml)
            write_case(folder, case_id, arrays)
            sources = {**image.sources, "generator": generator_digest(seed, v)}
            cases.append(CaseInfo(case_id, COLLECTION, host.split, image.geometry, sources,
                                  objects))
            drawn[case_id] = [les.to_json(sp) for les in lesions]
    for stale in folder.glob("synth_*.npz.xz"):
        if stale.name.removesuffix(".npz.xz") not in drawn:
            stale.unlink()
    extra = {k: v for k, v in old.items()
             if k not in ("data_sha256", "spacing", "command", "sha256_rule", "licences",
                          "cases", "synthetic")}
    extra["synthetic"] = {"version": GENERATOR_VERSION, "seed": seed, "variants": variants,
                          "splits": list(splits), "parameters": PARAMETERS,
                          "dropped_hosts": dropped, "lesions": drawn}
    write_manifest(folder, [*kept, *cases], spacing, command, extra)
    check(progress, 1.0, f"prepared {len(cases)} synthetic cases")
    return open_interactive(folder)


# -- evaluation ------------------------------------------------------------------------------
EVAL_SEED = 90210
EVAL_VARIANTS = 3  # per abdominal test host; one per OpenKBP test patient


def evaluation_cases(shared: str | Path, organ: str, *, seed: int = EVAL_SEED,
                     variants: int = EVAL_VARIANTS,
                     spacing: Sequence[float] = (1.5, 1.5, 3.0),
                     ) -> Iterator[tuple[str, Volume, list[tuple[str, BoolArray]], list[Lesion]]]:
    """Held-out synthetic lesions of one organ, drawn on the test hosts' own grids.

    Lesions are inserted at the host's native (LPS-aligned) grid, not resampled from a
    prepared case, so evaluation sees the full resolution, as with real studies. Yields
    ``(case id, volume, [(object name, reference mask)], lesions)``; a case's other lesions
    (of the other organ) stay in its image, unlabeled.
    """
    for host in synthetic_hosts(shared, splits=("test",)):
        if organ not in host.organs:
            continue
        image = load_host(host, spacing, native=True)
        if organ not in image.organs:
            continue
        for v in range(1 if host.host_id.startswith("openkbp") else variants):
            hu, lesions = synthesize(image, seed, v)
            mine = [les for les in lesions if les.organ == organ]
            if not mine:
                continue
            objs = [(f"{les.kind}_{n}", les.full_mask(hu.shape))
                    for n, les in enumerate(mine, start=1)]
            yield f"synth_{host.host_id}_v{v}", Volume(hu, image.geometry), objs, mine
