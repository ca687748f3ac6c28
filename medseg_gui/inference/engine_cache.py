"""The cache of built TensorRT plans: one file per ONNX hash, GPU, TensorRT version and precision.

A plan is only valid for the exact graph, GPU model/compute capability and TensorRT version it
was built with, so those are the cache key. Plans live in ``cache_dir()/engines`` (never in git).
Each file is ``MAGIC``, a 4-byte header length, a JSON header (the key, the plan's SHA-256 and
size) and the plan bytes. The header sits in the same file rather than a sidecar so that one
atomic rename publishes both: there is no moment when a plan and its metadata disagree.

On load the header must parse, name the same key and match the plan's hash; the optional
``validate`` callback (TensorRT deserialising it) must accept it. Anything else (truncated file,
another TensorRT's plan copied in, a bit flip) is logged and rebuilt, never run. This module has
no TensorRT dependency: the builder is passed in, so the logic is tested with a fake one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from medseg_gui.core.atomic import atomic_path
from medseg_gui.core.paths import cache_dir

log = logging.getLogger(__name__)

MAGIC = b"MEDSEG-TRT-PLAN\x01"
FORMAT = 1


@dataclass(frozen=True)
class EngineKey:
    """Everything a TensorRT plan depends on."""

    onnx_sha256: str
    gpu_name: str
    compute_capability: str
    tensorrt_version: str
    precision: str
    max_batch: int = 16
    opt_batch: int = 8
    model: str = ""  # "id:version", for people reading the cache folder; not part of the digest

    def digest(self) -> str:
        fields = {k: v for k, v in asdict(self).items() if k != "model"}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()

    def filename(self) -> str:
        stem = "".join(c if c.isalnum() or c in "-._" else "_" for c in self.model) or "model"
        return f"{stem}-{self.precision}-{self.digest()[:20]}.plan"


def engines_cache_dir() -> Path:
    folder = cache_dir() / "engines"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def plan_path(key: EngineKey, folder: Path | None = None) -> Path:
    return (folder or engines_cache_dir()) / key.filename()


def write_plan(path: Path, key: EngineKey, plan: bytes) -> None:
    """Header + plan into ``path`` through a temporary file and an atomic rename."""
    header = json.dumps({"format": FORMAT, "key": asdict(key), "size": len(plan),
                         "sha256": hashlib.sha256(plan).hexdigest()}).encode()
    with atomic_path(path, durable=True) as tmp, open(tmp, "wb") as f:
        f.write(MAGIC + struct.pack("<I", len(header)) + header)
        f.write(plan)


def read_plan(path: Path, key: EngineKey) -> tuple[bytes | None, str]:
    """The plan in ``path`` if its header matches ``key`` and its hash; else ``(None, why)``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, "not built yet"
    except OSError as exc:
        return None, f"unreadable ({exc})"
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
        return None, "not a medseg plan file (bad magic)"
    (n,) = struct.unpack_from("<I", data, len(MAGIC))
    start = len(MAGIC) + 4
    try:
        header: dict[str, Any] = json.loads(data[start : start + n])
    except (ValueError, UnicodeDecodeError):
        return None, "corrupt header"
    plan = data[start + n :]
    if header.get("format") != FORMAT:
        return None, f"stale format {header.get('format')!r}"
    if header.get("key") != asdict(key):
        return None, "stale: built for another model, GPU, TensorRT version or precision"
    if header.get("size") != len(plan) or header.get("sha256") != hashlib.sha256(plan).hexdigest():
        return None, "corrupt plan (size or SHA-256 mismatch)"
    return plan, "ok"


def load_or_build(
    key: EngineKey,
    build: Callable[[], bytes],
    *,
    validate: Callable[[bytes], bool] | None = None,
    folder: Path | None = None,
) -> tuple[bytes, bool]:
    """The cached plan for ``key``, building (and caching) it when missing, stale or corrupt.

    Returns
    -------
    (plan, built)
        The plan bytes and whether :func:`build` ran.

    Raises
    ------
    RuntimeError
        A freshly built plan fails ``validate``.
    """
    path = plan_path(key, folder)
    plan, why = read_plan(path, key)
    if plan is not None and (validate is None or validate(plan)):
        log.info("using cached TensorRT plan %s", path)
        return plan, False
    if plan is not None:
        why = "TensorRT could not deserialise it"
    if path.exists():
        log.warning("rebuilding TensorRT plan %s: %s", path.name, why)
    plan = build()
    if validate is not None and not validate(plan):
        raise RuntimeError("the freshly built TensorRT plan does not deserialise")
    write_plan(path, key, plan)
    return plan, True


def prune(keep: EngineKey, folder: Path | None = None) -> list[Path]:
    """Delete other plans of the same model and precision (older ONNX, TensorRT or GPU)."""
    folder = folder or engines_cache_dir()
    current = plan_path(keep, folder)
    prefix = current.name.rsplit("-", 1)[0] + "-"
    removed = [p for p in folder.glob(f"{prefix}*.plan") if p != current]
    for p in removed:
        p.unlink(missing_ok=True)
    return removed
