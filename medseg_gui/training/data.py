"""Training cases: discovery, the data hash, the fixed split and the prepared-array cache.

A training folder holds one subfolder per case with an image and a mask
(``DIR/<case>/CT_image.nii.gz`` and ``DIR/<case>/CT_mask.nii.gz``, the layout of the IBSI
soft-tissue-sarcoma set). Preparing a case resamples both onto the model's grid (same origin and
direction, the model's spacing: :meth:`Geometry.with_spacing`, which is also what inference does),
clips the image to the normalisation window and stores it as int16 HU, and keeps the original mask
and geometry so that validation is scored on the original grid. A queued correction may also hold
voxels whose truth is unknown (segments a reader left unfinished: :mod:`.review_filter`); they
become :data:`IGNORE` in the prepared label, which the loss and the patch sampler skip. The
prepared folder (``prepared.json`` plus one ``<case>.npz.xz`` each) needs neither SimpleITK nor the
NIfTI files, so it is what travels to a GPU machine; it records the SHA-256 of the source files it
came from.

The validation split is a pure function of the case ids: a case is in validation when the
SHA-256 of ``"<salt>:<case id>"`` falls in the lowest ``fraction`` of the hash range, or when it
is named in ``force_validation``. Adding or removing cases never moves any other case, and the
split is recorded in the model card and in every checkpoint.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from medseg_gui.core.atomic import write_bytes
from medseg_gui.core.geometry import Geometry
from medseg_gui.core.progress import Progress, check, no_progress
from medseg_gui.core.resample import resample_array
from medseg_gui.io.errors import LoadError

IMAGE_NAME = "CT_image.nii.gz"
MASK_NAME = "CT_mask.nii.gz"
PREPARED_NAME = "prepared.json"
SPLIT_SALT = "medseg-split-v1"
IGNORE = 255  # a prepared label's value for "unknown": neither tumour nor background
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Split:
    """A recorded train/validation split and the rule that made it."""

    train: tuple[str, ...]
    validation: tuple[str, ...]
    rule: str = "sha256(salt:case) / 2**256 < fraction, or case in force_validation"
    salt: str = SPLIT_SALT
    fraction: float = 0.2
    force_validation: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @staticmethod
    def from_json(d: dict[str, Any]) -> Split:
        return Split(
            tuple(d["train"]), tuple(d["validation"]), str(d.get("rule", Split.rule)),
            str(d.get("salt", SPLIT_SALT)), float(d.get("fraction", 0.2)),
            tuple(d.get("force_validation", ())),
        )


def hash_bucket(case_id: str, salt: str = SPLIT_SALT) -> float:
    """Where ``case_id`` falls in ``[0, 1)``: the first 32 bits of ``sha256(salt:case_id)``."""
    digest = hashlib.sha256(f"{salt}:{case_id}".encode()).hexdigest()
    return int(digest[:8], 16) / 2**32


def split_cases(case_ids: Iterable[str], fraction: float = 0.2,
                force_validation: Sequence[str] = (), salt: str = SPLIT_SALT) -> Split:
    """The deterministic split of ``case_ids`` (see the module docstring)."""
    ids = sorted(set(case_ids))
    val = tuple(c for c in ids if c in force_validation or hash_bucket(c, salt) < fraction)
    train = tuple(c for c in ids if c not in val)
    if not train or not val:
        raise LoadError(Path("."), f"split of {len(ids)} cases leaves an empty training or "
                        "validation set; add cases or change the validation fraction")
    return Split(train, val, salt=salt, fraction=fraction,
                 force_validation=tuple(sorted(c for c in force_validation if c in ids)))


def find_cases(folder: str | Path) -> dict[str, tuple[Path, Path]]:
    """``{case id: (image, mask)}`` for every ``folder/<case>/`` holding both files."""
    root = Path(folder)
    if not root.is_dir():
        raise LoadError(root, "training data folder not found")
    cases = {
        d.name: (d / IMAGE_NAME, d / MASK_NAME)
        for d in sorted(root.iterdir())
        if (d / IMAGE_NAME).is_file() and (d / MASK_NAME).is_file()
    }
    if not cases:
        raise LoadError(root, f"no case folders with {IMAGE_NAME} and {MASK_NAME}")
    return cases


def data_sha256(cases: dict[str, tuple[Path, Path]]) -> str:
    """One hash over the sorted cases: ``case/file-name sha256`` lines, hashed again."""
    from medseg_gui.inference.model_card import sha256_file

    lines = [f"{cid}/{p.name} {sha256_file(p)}\n" for cid in sorted(cases) for p in cases[cid]]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


# -- prepared cases ---------------------------------------------------------------------------
@dataclass
class PreparedCase:
    """One case on the model grid (``image`` int16 HU clipped, ``label`` 0/1 or :data:`IGNORE`)
    plus its original tumour mask (0/1) and grid, on which validation Dice is computed."""

    case_id: str
    image: npt.NDArray[np.int16]
    label: npt.NDArray[np.uint8]
    geometry: Geometry
    original_mask: npt.NDArray[np.uint8]
    original_geometry: Geometry


@dataclass
class PreparedSet:
    """A prepared folder: how it was made and where its cases are."""

    folder: Path
    spacing: tuple[float, float, float]
    clip: tuple[float, float]
    data_sha256: str
    source: str
    cases: list[str] = field(default_factory=list)
    command: str = ""

    def load(self, case_id: str) -> PreparedCase:
        return load_case(self.folder, case_id)


def _geom_json(g: Geometry) -> dict[str, Any]:
    return {"shape": list(g.shape), "spacing": list(g.spacing), "origin": list(g.origin),
            "direction": list(g.direction)}


def _geom_from(d: dict[str, Any]) -> Geometry:
    return Geometry(tuple(d["shape"]), tuple(d["spacing"]), tuple(d["origin"]),
                    tuple(d["direction"]))


def prepare_arrays(case_id: str, image: npt.NDArray[Any], mask: npt.NDArray[Any],
                   geometry: Geometry, spacing: Sequence[float], clip: tuple[float, float],
                   unknown: npt.NDArray[np.bool_] | None = None) -> PreparedCase:
    """Resample one image/mask pair onto the model grid (see the module docstring).

    ``unknown`` (on the mask's grid) marks voxels whose truth is unknown. Every model voxel whose
    footprint holds one becomes :data:`IGNORE`, even over tumour: a coarser grid must not shrink
    an unfinished lesion into background, and a voxel between a finished and an unfinished
    lesion is better left out than guessed. (The region is grown by half a model voxel on the
    mask's grid, so that no model voxel steps over a thin part of it, then every model voxel the
    linear resampling lets it touch is taken.)
    """
    target = geometry.with_spacing(spacing)
    linear = resample_array(image, geometry, target, order=1)
    img = np.clip(np.rint(linear), clip[0], clip[1]).astype(np.int16)
    binary = (np.asarray(mask) > 0).astype(np.uint8)
    lab = (resample_array(binary, geometry, target, order=1) >= 0.5).astype(np.uint8)
    if unknown is not None and unknown.any():
        reach = [int(t / (2 * s)) for t, s in zip(target.spacing, geometry.spacing, strict=True)]
        box = np.ones([2 * r + 1 for r in reversed(reach)], bool)  # (k, j, i) like the array
        grown = ndimage.binary_dilation(unknown, box) if box.size > 1 else unknown
        lab[resample_array(grown.astype(np.uint8), geometry, target, order=1) > 0] = IGNORE
    return PreparedCase(case_id, img, lab, target, binary, geometry)


def save_case(folder: Path, case: PreparedCase) -> None:
    buf = io.BytesIO()
    np.savez(buf, image=case.image, label=case.label, original_mask=case.original_mask)
    write_bytes(folder / f"{case.case_id}.npz.xz", lzma.compress(buf.getvalue(), preset=6))
    meta = {"geometry": _geom_json(case.geometry),
            "original_geometry": _geom_json(case.original_geometry)}
    (folder / f"{case.case_id}.json").write_text(json.dumps(meta), encoding="utf-8")


def load_case(folder: Path, case_id: str) -> PreparedCase:
    path = folder / f"{case_id}.npz.xz"
    try:
        meta = json.loads((folder / f"{case_id}.json").read_text(encoding="utf-8"))
        with np.load(io.BytesIO(lzma.decompress(path.read_bytes())), allow_pickle=False) as z:
            return PreparedCase(case_id, z["image"], z["label"], _geom_from(meta["geometry"]),
                                z["original_mask"], _geom_from(meta["original_geometry"]))
    except (OSError, lzma.LZMAError, KeyError, ValueError) as exc:
        raise LoadError(path, f"unreadable prepared case: {exc}") from exc


def prepare_folder(data: str | Path, out: str | Path, spacing: Sequence[float],
                   clip: tuple[float, float], progress: Progress = no_progress,
                   command: str = "") -> PreparedSet:
    """Prepare every case of the NIfTI folder ``data`` into ``out`` (skipped when up to date)."""
    from medseg_gui.io.imagefile import read_image

    cases = find_cases(data)
    folder = Path(out)
    digest = data_sha256(cases)
    spacing3 = (float(spacing[0]), float(spacing[1]), float(spacing[2]))
    clip2 = (float(clip[0]), float(clip[1]))
    try:
        done = open_prepared(folder)
        if (done.data_sha256, done.spacing, done.clip) == (digest, spacing3, clip2):
            return done
    except LoadError:
        pass
    folder.mkdir(parents=True, exist_ok=True)
    for n, (cid, (img_path, mask_path)) in enumerate(cases.items()):
        check(progress, n / len(cases), f"preparing {cid}")
        vol, mask = read_image(img_path), read_image(mask_path)
        if not vol.geometry.same_grid(mask.geometry, tol=1e-2):
            raise LoadError(mask_path, "mask grid differs from the image grid")
        if vol.geometry.orientation_code() != "LPS":
            raise LoadError(img_path, f"orientation {vol.geometry.orientation_code()}: "
                            "training expects LPS-ordered axes; reorient the case first")
        save_case(folder, prepare_arrays(cid, vol.array, mask.array, vol.geometry, spacing3,
                                         clip2))
    manifest = {"spacing": list(spacing3), "clip": list(clip2), "data_sha256": digest,
                "source": str(data), "cases": sorted(cases), "command": command}
    (folder / PREPARED_NAME).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    check(progress, 1.0, f"prepared {len(cases)} cases")
    return open_prepared(folder)


def open_prepared(folder: str | Path) -> PreparedSet:
    """Read a prepared folder's manifest."""
    path = Path(folder) / PREPARED_NAME
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        sp = [float(v) for v in d["spacing"]]
        return PreparedSet(Path(folder), (sp[0], sp[1], sp[2]),
                           (float(d["clip"][0]), float(d["clip"][1])), str(d["data_sha256"]),
                           str(d.get("source", "")), [str(c) for c in d["cases"]],
                           str(d.get("command", "")))
    except FileNotFoundError as exc:
        raise LoadError(path, "not a prepared training folder (no prepared.json)") from exc
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise LoadError(path, f"malformed prepared.json: {exc}") from exc
