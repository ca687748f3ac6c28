"""Segment surfaces as STL/OBJ meshes in world (LPS) millimetres.

A surface is the 0.5 iso-surface of the zero-padded binary mask (marching cubes), so it runs
half-way between voxel centres inside and outside and closes at the image border. Vertices are
mapped through :meth:`Geometry.index_to_world`, so direction, spacing and origin are applied and
the mesh overlays the CT in any viewer that reads LPS coordinates (3D Slicer asks on STL import;
say LPS). Triangles are wound counter-clockwise seen from outside (positive signed volume).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from skimage.measure import marching_cubes

from medseg_gui.core.segmentation import Segmentation
from medseg_gui.io.errors import LoadError
from medseg_gui.io.output import atomic_output

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh: ``vertices`` (n, 3) in LPS mm, ``faces`` (m, 3) vertex indices."""

    name: str
    vertices: npt.NDArray[np.float64]
    faces: npt.NDArray[np.int64]

    def signed_volume_mm3(self) -> float:
        """Enclosed volume (positive for outward-facing triangles)."""
        a, b, c = (self.vertices[self.faces[:, n]] for n in range(3))
        return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def segment_mesh(seg: Segmentation, label: int) -> Mesh:
    """The surface of segment ``label`` (an empty mesh when the segment is empty)."""
    name = seg.segment(label).name
    mask = seg.labelmap == label
    if not mask.any():
        return Mesh(name, np.zeros((0, 3)), np.zeros((0, 3), np.int64))
    idx = np.argwhere(mask)
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    sub = np.pad(mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].astype(np.float32), 1)
    verts, faces, _, _ = marching_cubes(sub, level=0.5)  # type: ignore[no-untyped-call]
    kji = verts - 1.0 + lo
    xyz = seg.geometry.index_to_world(kji[:, ::-1])
    mesh = Mesh(name, xyz, faces.astype(np.int64))
    if mesh.signed_volume_mm3() < 0:
        mesh = Mesh(name, xyz, mesh.faces[:, ::-1].copy())
    return mesh


def _normals(mesh: Mesh) -> npt.NDArray[np.float64]:
    a, b, c = (mesh.vertices[mesh.faces[:, n]] for n in range(3))
    n = np.cross(b - a, c - a)
    length = np.linalg.norm(n, axis=1, keepdims=True)
    out: npt.NDArray[np.float64] = n / np.where(length > 0, length, 1.0)
    return out


def write_stl(mesh: Mesh, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a binary STL (float32 coordinates, LPS mm), atomically."""
    rec = np.zeros(len(mesh.faces), dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)),
                                           ("attr", "<u2")])
    rec["n"] = _normals(mesh)
    rec["v"] = mesh.vertices[mesh.faces]
    header = f"medseg-gui surface '{mesh.name}' LPS mm".encode("ascii", "replace")[:80]
    with atomic_output(path, overwrite=overwrite) as tmp, open(tmp, "wb") as f:
        f.write(header.ljust(80, b" "))
        f.write(np.uint32(len(rec)).tobytes())
        f.write(rec.tobytes())
    return Path(path)


def write_obj(meshes: Sequence[Mesh], path: str | Path, *, overwrite: bool = False) -> Path:
    """Write meshes as one Wavefront OBJ with a named object per mesh, atomically."""
    lines = ["# medseg-gui surfaces, LPS millimetres"]
    base = 1
    for mesh in meshes:
        lines.append(f"o {_safe(mesh.name)}")
        lines += [f"v {x:.4f} {y:.4f} {z:.4f}" for x, y, z in mesh.vertices]
        lines += [f"f {a + base} {b + base} {c + base}" for a, b, c in mesh.faces]
        base += len(mesh.vertices)
    with atomic_output(path, overwrite=overwrite) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(path)


def read_stl(path: str | Path) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Triangles ``(m, 3, 3)`` and normals ``(m, 3)`` of a binary STL (for checks and tests)."""
    raw = Path(path).read_bytes()
    n = int(np.frombuffer(raw, "<u4", 1, 80)[0])
    if len(raw) != 84 + 50 * n:
        raise LoadError(path, "not a binary STL (size does not match the triangle count)")
    rec = np.frombuffer(raw, dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")],
                        count=n, offset=84)
    return rec["v"].copy(), rec["n"].copy()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "segment"


def export_surfaces(seg: Segmentation, out: str | Path, fmt: str = "stl", *,
                    labels: Sequence[int] | None = None, overwrite: bool = False,
                    warn: Callable[[str], None] | None = None) -> list[Path]:
    """Write the surfaces of ``labels`` (all segments by default).

    ``fmt="stl"``: ``out`` is a folder and gets ``<label>_<name>.stl`` per segment.
    ``fmt="obj"``: ``out`` is one ``.obj`` file holding every segment as an object.
    An empty segment gets no file (or object) and ``warn`` is told so, once per segment: an
    STL of no triangles opens as nothing in other software, with nothing to say why.

    Raises
    ------
    LoadError
        Unknown format or label, a target exists without ``overwrite``, or every chosen
        segment is empty: a run that writes no surface must not look like a success to the
        user or to a script that goes on to print it.
    """
    chosen = [s.label for s in seg.segments] if labels is None else list(labels)
    known = {s.label for s in seg.segments}
    if any(v not in known for v in chosen):
        raise LoadError(out, f"no segment with label(s) {sorted(set(chosen) - known)}")
    meshes = [segment_mesh(seg, v) for v in chosen]
    if not any(len(m.faces) for m in meshes):
        why = f"segment(s) {', '.join(map(str, chosen))} empty" if chosen else "no segment"
        raise LoadError(out, f"no surface to write: the mask is empty ({why})")
    for v, m in zip(chosen, meshes, strict=True):
        if not len(m.faces):
            log.warning("%s: segment %d (%s) is empty, no surface written", out, v, m.name)
            if warn is not None:
                warn(f"segment {v} ({m.name}) is empty: no surface written for it")
    kept = [(v, m) for v, m in zip(chosen, meshes, strict=True) if len(m.faces)]
    chosen, meshes = [v for v, _ in kept], [m for _, m in kept]
    if fmt == "obj":
        return [write_obj(meshes, out, overwrite=overwrite)]
    if fmt != "stl":
        raise LoadError(out, f"unknown surface format {fmt!r}: use stl or obj")
    folder = Path(out)
    targets = [folder / f"{v}_{_safe(m.name)}.stl" for v, m in zip(chosen, meshes, strict=True)]
    clash = [t for t in targets if t.exists()]
    if clash and not overwrite:
        raise LoadError(clash[0], "output exists; pass --force (overwrite=True) to replace it")
    return [write_stl(m, t, overwrite=overwrite) for m, t in zip(meshes, targets, strict=True)]


def mesh_extent(mesh: Mesh) -> tuple[Any, Any]:
    """World-space bounding box ``(min_xyz, max_xyz)`` of a mesh."""
    return mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
