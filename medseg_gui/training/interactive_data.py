"""Objects to train the promptable model on: real CT with one mask per object, prepared compactly.

Sources (``../shared/data``): the 43 IBSI sarcoma CTs (one tumour each), the 100 OpenKBP
head-and-neck CTs (planning target volumes and up to seven organs each) and the TotalSegmentator
example CT (its organs). ``ibsi_lung`` is never read here: its licence allows evaluation only.

Splits are pure functions of the case ids (:func:`~.data.split_cases`): the sarcomas use the
automatic model's rule (its held-out cases stay held out and are test cases here); OpenKBP uses
the same rule, and its held-out patients are split again (salt ``medseg-interactive-val``) into
*validation* (used to choose between runs) and *test* (reported, never used to choose). The
TotalSegmentator CT of the DICOM example is a test case; its 3 mm NIfTI sibling is trained on.

A prepared set is a folder with ``objects.json`` (cases, objects, split, source hashes) and one
``<case>.npz.xz`` per case: the CT on an LPS-aligned grid at the coarser of its own spacing and
the model's, stored as 8 bits through a piecewise-linear HU code (3 HU steps from -200 to 300,
10 HU in lung, 80 HU in bone: below CT noise where tissue is told apart) and each object's mask
bit-packed inside its bounding box. 109 training CTs fit in about 30 MB, which is what may travel
to a GPU machine in one call.
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

from medseg_gui.core.atomic import write_bytes
from medseg_gui.core.geometry import Geometry
from medseg_gui.core.progress import Progress, check, no_progress
from medseg_gui.core.resample import resample_array
from medseg_gui.io.errors import LoadError
from medseg_gui.training.data import hash_bucket, split_cases

MANIFEST = "objects.json"
VALIDATION_SALT = "medseg-interactive-val"
VALIDATION_SHARE = 1 / 3  # of OpenKBP's held-out patients
HU_POINTS = (-1000.0, -200.0, 300.0, 940.0)
CODE_POINTS = (0.0, 80.0, 247.0, 255.0)
OPENKBP_STRUCTURES = ("PTV70", "PTV63", "PTV56", "Brainstem", "SpinalCord", "RightParotid",
                      "LeftParotid", "Larynx", "Esophagus", "Mandible")
MIN_OBJECT_ML = 0.5
LICENCES = {"sarcoma": "IBSI soft-tissue sarcoma, CC BY 3.0", "openkbp": "OpenKBP, MIT",
            "totalseg": "TotalSegmentator, Apache-2.0",
            "queue": "the site's own corrected cases (de-identified training queue)",
            "synthetic": "synthetic lesions (this project's generator) in hosts from "
                         "TotalSegmentator (Apache-2.0), CRLM unlabeled (CC BY 4.0) and OpenKBP "
                         "(MIT)"}

# TotalSegmentator v2 "total" labels (wasserth/TotalSegmentator, map_to_binary.py); the
# example CTs hold 41 and 31 of them.
TOTALSEG_NAMES = (
    "spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "pancreas",
    "adrenal_gland_right", "adrenal_gland_left", "lung_upper_lobe_left", "lung_lower_lobe_left",
    "lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right", "esophagus",
    "trachea", "thyroid_gland", "small_bowel", "duodenum", "colon", "urinary_bladder", "prostate",
    "kidney_cyst_left", "kidney_cyst_right", "sacrum", "vertebrae_S1", "vertebrae_L5",
    "vertebrae_L4", "vertebrae_L3", "vertebrae_L2", "vertebrae_L1", "vertebrae_T12",
    "vertebrae_T11", "vertebrae_T10", "vertebrae_T9", "vertebrae_T8", "vertebrae_T7",
    "vertebrae_T6", "vertebrae_T5", "vertebrae_T4", "vertebrae_T3", "vertebrae_T2",
    "vertebrae_T1", "vertebrae_C7", "vertebrae_C6", "vertebrae_C5", "vertebrae_C4",
    "vertebrae_C3", "vertebrae_C2", "vertebrae_C1", "heart", "aorta", "pulmonary_vein",
    "brachiocephalic_trunk", "subclavian_artery_right", "subclavian_artery_left",
    "common_carotid_artery_right", "common_carotid_artery_left", "brachiocephalic_vein_left",
    "brachiocephalic_vein_right", "atrial_appendage_left", "superior_vena_cava",
    "inferior_vena_cava", "portal_vein_and_splenic_vein", "iliac_artery_left",
    "iliac_artery_right", "iliac_vena_left", "iliac_vena_right", "humerus_left",
    "humerus_right", "scapula_left", "scapula_right", "clavicula_left", "clavicula_right",
    "femur_left", "femur_right", "hip_left", "hip_right", "spinal_cord", "gluteus_maximus_left",
    "gluteus_maximus_right", "gluteus_medius_left", "gluteus_medius_right",
    "gluteus_minimus_left", "gluteus_minimus_right", "autochthon_left", "autochthon_right",
    "iliopsoas_left", "iliopsoas_right", "brain", "skull",
    *(f"rib_left_{n}" for n in range(1, 13)), *(f"rib_right_{n}" for n in range(1, 13)),
    "sternum", "costal_cartilages",
)


# -- the 8-bit HU code -----------------------------------------------------------------------
def encode_hu(hu: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """HU -> the 8-bit code (see the module docstring)."""
    code = np.interp(np.asarray(hu, dtype=np.float32), HU_POINTS, CODE_POINTS)
    return np.rint(code).astype(np.uint8)


def decode_hu(code: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """The 8-bit code -> HU (the centre of each step)."""
    return np.interp(code.astype(np.float32), CODE_POINTS, HU_POINTS).astype(np.float32)


# -- what a prepared set holds ------------------------------------------------------------------
@dataclass(frozen=True)
class ObjectInfo:
    """One object of a case: its mask's box ``[k0, k1) x [j0, j1) x [i0, i1)`` on the stored
    grid, its size, and what it is (``tumour``, ``target`` or ``organ``)."""

    name: str
    kind: str
    box: tuple[int, int, int, int, int, int]
    voxels: int
    volume_ml: float


@dataclass
class CaseInfo:
    """One CT of a prepared set."""

    case_id: str
    collection: str
    split: str  # "train", "validation" or "test"
    geometry: Geometry
    sources: dict[str, str]  # file name -> sha256
    objects: list[ObjectInfo] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        g = self.geometry
        return {"case_id": self.case_id, "collection": self.collection, "split": self.split,
                "geometry": {"shape": list(g.shape), "spacing": list(g.spacing),
                             "origin": list(g.origin), "direction": list(g.direction)},
                "sources": self.sources, "objects": [asdict(o) for o in self.objects]}

    @staticmethod
    def from_json(d: dict[str, Any]) -> CaseInfo:
        g = d["geometry"]
        return CaseInfo(d["case_id"], d["collection"], d["split"],
                        Geometry(tuple(g["shape"]), tuple(g["spacing"]), tuple(g["origin"]),
                                 tuple(g["direction"])),
                        dict(d["sources"]),
                        [ObjectInfo(o["name"], o["kind"], tuple(o["box"]), int(o["voxels"]),
                                    float(o["volume_ml"])) for o in d["objects"]])


@dataclass
class LoadedCase:
    """A prepared case in memory: HU on its stored grid and one full-size mask per object."""

    info: CaseInfo
    hu: npt.NDArray[np.float32]
    masks: list[npt.NDArray[np.bool_]]


@dataclass
class InteractiveSet:
    """A prepared folder: its cases and how it was made."""

    folder: Path
    cases: list[CaseInfo]
    data_sha256: str
    spacing: tuple[float, float, float]
    command: str = ""

    def select(self, split: str | Iterable[str]) -> list[CaseInfo]:
        want = {split} if isinstance(split, str) else set(split)
        return [c for c in self.cases if c.split in want]

    def load(self, case_id: str) -> LoadedCase:
        info = next(c for c in self.cases if c.case_id == case_id)
        path = self.folder / f"{case_id}.npz.xz"
        try:
            with np.load(io.BytesIO(lzma.decompress(path.read_bytes())),
                         allow_pickle=False) as z:
                hu = decode_hu(z["image"])
                masks = []
                for n, obj in enumerate(info.objects):
                    k0, k1, j0, j1, i0, i1 = obj.box
                    shape = (k1 - k0, j1 - j0, i1 - i0)
                    bits = np.unpackbits(z[f"mask{n}"], count=int(np.prod(shape)))
                    full = np.zeros(info.geometry.shape, dtype=bool)
                    full[k0:k1, j0:j1, i0:i1] = bits.reshape(shape).astype(bool)
                    masks.append(full)
        except (OSError, lzma.LZMAError, KeyError, ValueError) as exc:
            raise LoadError(path, f"unreadable prepared case: {exc}") from exc
        return LoadedCase(info, hu, masks)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for c in self.cases:
            row = out.setdefault(f"{c.collection}/{c.split}", {"cases": 0, "objects": 0})
            row["cases"] += 1
            row["objects"] += len(c.objects)
        return out


def open_interactive(folder: str | Path) -> InteractiveSet:
    path = Path(folder) / MANIFEST
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        sp = [float(v) for v in d["spacing"]]
        return InteractiveSet(Path(folder), [CaseInfo.from_json(c) for c in d["cases"]],
                              str(d["data_sha256"]), (sp[0], sp[1], sp[2]),
                              str(d.get("command", "")))
    except FileNotFoundError as exc:
        raise LoadError(path, "not a prepared promptable-model set (no objects.json)") from exc
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise LoadError(path, f"malformed objects.json: {exc}") from exc


def open_validation(folder: str | Path) -> InteractiveSet:
    """:func:`open_interactive`, refused with one line when the set holds no validation cases
    (what choosing a run and the fine-tuning gate are measured on)."""
    data = open_interactive(folder)
    if not data.select("validation"):
        raise LoadError(Path(folder), "no validation cases in this prepared set (prepare it "
                        "with --splits validation)")
    return data


# -- sources -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceCase:
    """One CT to prepare: its image file and ``(object name, kind, mask file, label)`` rows
    (``label`` 0: the file is a 0/1 mask; otherwise the voxels equal to it)."""

    case_id: str
    collection: str
    split: str
    image: Path
    objects: tuple[tuple[str, str, Path, int], ...]


def shared_sources(shared: str | Path, *, splits: Sequence[str] = ("train",)) -> list[SourceCase]:
    """The cases of ``shared`` (``../shared/data``) in the given splits."""
    root = Path(shared)
    out: list[SourceCase] = []
    sts = root / "ibsi_sts" / "nifti"
    ids = sorted(d.name for d in sts.iterdir() if (d / "CT_mask.nii.gz").is_file())
    held = set(split_cases(ids, 0.2, ("STS_008",)).validation)
    for cid in ids:
        out.append(SourceCase(cid, "sarcoma", "test" if cid in held else "train",
                              sts / cid / "CT_image.nii.gz",
                              (("GTV", "tumour", sts / cid / "CT_mask.nii.gz", 0),)))
    kbp = root / "openkbp"
    ids = sorted(d.name for d in kbp.iterdir() if (d / "CT_image.nii.gz").is_file())
    held = set(split_cases(ids, 0.2).validation)
    for cid in ids:
        split = "train"
        if cid in held:
            split = "validation" if hash_bucket(cid, VALIDATION_SALT) < VALIDATION_SHARE \
                else "test"
        objs = tuple((s, "target" if s.startswith("PTV") else "organ", kbp / cid / f"{s}.nii.gz",
                      0) for s in OPENKBP_STRUCTURES if (kbp / cid / f"{s}.nii.gz").is_file())
        out.append(SourceCase(f"openkbp_{cid.removeprefix('train_')}", "openkbp", split,
                              kbp / cid / "CT_image.nii.gz", objs))
    ts = root / "totalseg_example"
    for cid, image, seg, split in (
            ("totalseg_3mm", ts / "example_ct_sm.nii.gz", ts / "example_seg.nii.gz", "train"),
            ("totalseg_dicom", ts / "example_ct_dicom", ts / "example_seg_dicom.nii.gz", "test")):
        labels = _labels_in(seg)
        objs = tuple((TOTALSEG_NAMES[v - 1], "organ", seg, v) for v in labels)
        out.append(SourceCase(cid, "totalseg", split, image, objs))
    return [c for c in out if c.split in splits]


def _labels_in(path: Path) -> list[int]:
    from medseg_gui.io.imagefile import read_image

    values = np.unique(read_image(path).array)
    return [int(v) for v in values if 0 < v <= len(TOTALSEG_NAMES)]


# -- preparation ---------------------------------------------------------------------------
def lps_aligned(array: npt.NDArray[Any], geometry: Geometry) -> tuple[npt.NDArray[Any], Geometry]:
    """The same voxels with axes along +L, +P, +S (flips and transposes only).

    Raises ``ValueError`` for an oblique direction (the training sets have none).
    """
    d = geometry.direction_matrix
    axes = np.argmax(np.abs(d), axis=0)  # world axis of i, j, k
    if sorted(axes.tolist()) != [0, 1, 2] or not np.allclose(np.abs(d).max(axis=0), 1.0,
                                                             atol=1e-4):
        raise ValueError("oblique image directions are not supported for training")
    arr, spacing = array, np.asarray(geometry.spacing)
    origin = geometry.index_to_world([0, 0, 0])
    n = np.asarray(geometry.size_ijk)
    for col in range(3):
        if d[axes[col], col] < 0:  # this index axis runs against its world axis: flip it
            arr = np.flip(arr, axis=2 - col)
            origin = origin + d[:, col] * spacing[col] * (n[col] - 1)
    along = np.argsort(axes)  # the index axis that lies along x, y, z
    arr = np.transpose(arr, [2 - int(c) for c in along[::-1]])
    g = Geometry(arr.shape, tuple(spacing[along]), tuple(origin))
    return np.ascontiguousarray(arr), g


def prepare_case(src: SourceCase, spacing: Sequence[float]) -> tuple[CaseInfo, dict[str, Any]]:
    """One source case on its storage grid: the coder arrays and its :class:`CaseInfo`."""
    from medseg_gui.inference.model_card import sha256_file
    from medseg_gui.io.loader import load_volume

    vol = load_volume(src.image)
    hu, native = lps_aligned(vol.array, vol.geometry)
    store = native.with_spacing(np.maximum(np.asarray(native.spacing), np.asarray(spacing)))
    arrays: dict[str, Any] = {"image": encode_hu(resample_array(hu, native, store, order=1))}
    sources = {} if src.image.is_dir() else {src.image.name: sha256_file(src.image)}
    objects: list[ObjectInfo] = []
    cache: dict[Path, tuple[npt.NDArray[Any], Geometry]] = {}
    voxel_ml = float(np.prod(store.spacing)) / 1000.0
    for name, kind, path, label in src.objects:
        if path not in cache:
            m = load_volume(path)
            if not m.geometry.same_grid(vol.geometry, tol=1e-2):
                m = m.resample(vol.geometry, interpolation="nearest")
            cache[path] = lps_aligned(m.array, vol.geometry)[0], native
            sources[path.name] = sha256_file(path)
        labels, _ = cache[path]
        binary = (labels == label) if label else (labels > 0)
        mask = resample_array(binary.astype(np.float32), native, store, order=1) >= 0.5
        voxels = int(mask.sum())
        if voxels * voxel_ml < MIN_OBJECT_ML:
            continue  # a sliver (a structure cut by the edge of the scan)
        idx = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax)))
               for ax in range(3)]
        box = (int(idx[0][0]), int(idx[0][-1]) + 1, int(idx[1][0]), int(idx[1][-1]) + 1,
               int(idx[2][0]), int(idx[2][-1]) + 1)
        arrays[f"mask{len(objects)}"] = np.packbits(
            mask[box[0]:box[1], box[2]:box[3], box[4]:box[5]].ravel())
        objects.append(ObjectInfo(name, kind, box, voxels, round(voxels * voxel_ml, 2)))
    return CaseInfo(src.case_id, src.collection, src.split, store, sources, objects), arrays


def prepare_interactive(shared: str | Path, out: str | Path, spacing: Sequence[float], *,
                        splits: Sequence[str] = ("train",), progress: Progress = no_progress,
                        command: str = "") -> InteractiveSet:
    """Prepare the cases of ``shared`` in ``splits`` into ``out`` (see the module docstring)."""
    return prepare_sources(shared_sources(shared, splits=splits), out, spacing,
                           progress=progress, command=command)


def prepare_sources(sources: Sequence[SourceCase], out: str | Path, spacing: Sequence[float], *,
                    progress: Progress = no_progress, command: str = "") -> InteractiveSet:
    """Prepare ``sources`` into the folder ``out`` (``objects.json`` and one file a case)."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    cases: list[CaseInfo] = []
    for n, src in enumerate(sources):
        check(progress, n / len(sources), f"preparing {src.case_id}")
        info, arrays = prepare_case(src, spacing)
        write_case(folder, src.case_id, arrays)
        cases.append(info)
    write_manifest(folder, cases, spacing, command)
    check(progress, 1.0, f"prepared {len(cases)} cases")
    return open_interactive(folder)


def write_case(folder: Path, case_id: str, arrays: dict[str, Any]) -> None:
    """One case's arrays (``image`` and ``mask<n>``) as ``<case_id>.npz.xz``, atomically."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes(folder / f"{case_id}.npz.xz", lzma.compress(buf.getvalue(), preset=6))


def write_manifest(folder: Path, cases: Sequence[CaseInfo], spacing: Sequence[float],
                   command: str, extra: dict[str, Any] | None = None) -> None:
    """``objects.json`` for ``cases``; its ``data_sha256`` covers every case's sources.

    ``extra`` adds top-level keys (e.g. the synthetic-lesion generator's parameters).
    """
    lines = sorted(f"{c.case_id}/{name} {digest}" for c in cases
                   for name, digest in c.sources.items())
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    manifest = {"data_sha256": digest, "spacing": list(spacing), "command": command,
                "sha256_rule": "sha256 of sorted '<case>/<file> <sha256 of file>' lines "
                               "(DICOM folders: their masks only; synthetic cases: their host "
                               "and their generator's parameters)",
                "licences": {k: v for k, v in LICENCES.items()
                             if any(c.collection == k for c in cases)},
                **(extra or {}),
                "cases": [c.to_json() for c in cases]}
    write_bytes(folder / MANIFEST, json.dumps(manifest, indent=1).encode("utf-8"))


def merge_prepared(folders: Sequence[str | Path], out: str | Path) -> InteractiveSet:
    """One prepared set holding the cases of several (links to their case files, one
    manifest whose hash follows the same rule over all the cases), so a run can train on
    sets prepared apart, e.g. the shared cases and synthetic lesions."""
    sets = [open_interactive(f) for f in folders]
    spacings = {s.spacing for s in sets}
    if len(spacings) != 1:
        raise LoadError(Path(out), f"cannot merge sets prepared at different spacings "
                                   f"{sorted(spacings)}")
    dest = Path(out)
    dest.mkdir(parents=True, exist_ok=True)
    cases: list[CaseInfo] = []
    for s in sets:
        for c in s.cases:
            if any(c.case_id == o.case_id for o in cases):
                raise LoadError(s.folder, f"case {c.case_id} is in more than one set")
            link = dest / f"{c.case_id}.npz.xz"
            link.unlink(missing_ok=True)
            link.symlink_to((s.folder / link.name).resolve())
            cases.append(c)
    extra: dict[str, Any] = {"merged_from": {str(s.folder): s.data_sha256 for s in sets}}
    for s in sets:  # what each part recorded of how it was made (the lesion generator)
        manifest = json.loads((s.folder / MANIFEST).read_text(encoding="utf-8"))
        extra.update({k: v for k, v in manifest.items() if k not in (
            "data_sha256", "spacing", "command", "sha256_rule", "licences", "cases")})
    write_manifest(dest, cases, sets[0].spacing,
                   " + ".join(s.command or str(s.folder) for s in sets), extra)
    return open_interactive(dest)
