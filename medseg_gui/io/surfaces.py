"""Segment surfaces: the one mesh builder, and STL/OBJ files of it in world (LPS) millimetres.

:func:`label_mesh` builds every surface the product shows or writes: the 3D view draws it
(:mod:`medseg_gui.rendering.surfaces` only wraps it for VTK) and STL/OBJ export writes it, so
the exported file is the surface the user saw. It lives here, below ``rendering``, because the
export runs without VTK (the Qt-free packages may not import it) and the view may import ``io``.

A surface is the 0.5 iso-surface of the zero-padded binary mask (marching cubes), so it runs
half-way between voxel centres inside and outside and closes at the image border; its vertices
are mapped through :meth:`Geometry.index_to_world`, so direction, spacing and origin are applied
and the mesh overlays the CT in any viewer that reads LPS coordinates (3D Slicer asks on STL
import; say LPS). It is then smoothed by Taubin's windowed-sinc filter (:func:`windowed_sinc`,
the method of VTK's ``vtkWindowedSincPolyDataFilter`` with its Nuttall window and coordinate
normalisation, at the settings 3D Slicer uses for a smoothing factor of 0.5): the voxel
staircase goes, the volume stays (a low-pass filter, not shrinking Laplacian smoothing).
Triangles are wound counter-clockwise seen from outside (positive signed volume).
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
from scipy import sparse
from skimage.measure import marching_cubes

from medseg_gui.core.geometry import Geometry
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


# Windowed-sinc settings as 3D Slicer uses for "smoothing factor 0.5": a mild smoothing that
# removes the voxel staircase but keeps small lesions' shape.
SMOOTHING_ITERATIONS = 20
PASS_BAND = 0.01
# Nuttall's four-term window (VTK's default since 9.2: its Hamming window changed the size of
# the smoothed surface by up to 1 %).
_NUTTALL = (0.355768, 0.487396, 0.144232, 0.012604)


def label_mesh(labelmap: npt.NDArray[Any], geometry: Geometry, label: int, name: str = "", *,
               smoothing: bool = True) -> Mesh:
    """The surface of the voxels of ``labelmap`` equal to ``label``, in LPS mm.

    Parameters
    ----------
    labelmap, geometry
        The label map (``(k, j, i)``) and its grid; read, never changed.
    label
        The segment's value; an empty mesh when no voxel has it.
    smoothing
        Windowed-sinc smoothing (:func:`windowed_sinc`), as the 3D view shows it; ``False``
        gives the raw iso-surface, whose vertices lie half-way between voxel centres.
    """
    mask = labelmap == label
    if not mask.any():
        return Mesh(name, np.zeros((0, 3)), np.zeros((0, 3), np.int64))
    idx = np.argwhere(mask)
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    sub = np.pad(mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].astype(np.float32), 1)
    verts, faces, _, _ = marching_cubes(sub, level=0.5)  # type: ignore[no-untyped-call]
    kji = verts - 1.0 + lo
    xyz = geometry.index_to_world(kji[:, ::-1])
    faces = faces.astype(np.int64)
    if smoothing:
        xyz = windowed_sinc(xyz, faces)
    mesh = Mesh(name, xyz, faces)
    if mesh.signed_volume_mm3() < 0:
        mesh = Mesh(name, xyz, faces[:, ::-1].copy())
    return mesh


def segment_mesh(seg: Segmentation, label: int, *, smoothing: bool = True) -> Mesh:
    """The surface of segment ``label`` (:func:`label_mesh`, named after the segment)."""
    return label_mesh(seg.labelmap, seg.geometry, label, seg.segment(label).name,
                      smoothing=smoothing)


def windowed_sinc(points: npt.NDArray[np.float64], faces: npt.NDArray[np.int64], *,
                  iterations: int = SMOOTHING_ITERATIONS,
                  pass_band: float = PASS_BAND) -> npt.NDArray[np.float64]:
    """Taubin's windowed-sinc low-pass filter of a closed triangle mesh's vertices.

    The filter (Taubin, Zhang & Golub 1996, "Optimal surface smoothing as filter design") is a
    Chebyshev polynomial of the mesh's umbrella operator (each vertex towards the mean of its
    edge neighbours), windowed by Nuttall's window and offset so that its gain at
    ``pass_band`` is 1. Coordinates are centred and scaled to the bounding box's diagonal
    first, because the polynomial's gain at frequency 0 is not exactly 1. Every vertex moves
    (the builder's surfaces are closed, so there are no boundary edges to pin).
    """
    n = len(points)
    if n == 0 or iterations < 1:
        return points.copy()
    i = faces[:, [0, 1, 2, 1, 2, 0]].ravel()
    j = faces[:, [1, 2, 0, 0, 1, 2]].ravel()
    adjacency = sparse.csr_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    adjacency.data[:] = 1.0  # an edge shared by two triangles counts once
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    mean = sparse.diags(1.0 / np.maximum(degree, 1.0)) @ adjacency

    def half_step(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        out: npt.NDArray[np.float64] = 0.5 * (x + mean @ x)  # I - K/2, K the umbrella Laplacian
        return out

    lo, hi = points.min(axis=0), points.max(axis=0)
    centre, length = (lo + hi) / 2, float(np.linalg.norm(hi - lo)) or 1.0
    c = _chebyshev_coefficients(iterations, pass_band)
    x0 = (points - centre) / length
    x1 = half_step(x0)
    smooth = c[0] * x0 + c[1] * x1
    for k in range(2, iterations + 1):
        x0, x1 = x1, 2.0 * half_step(x1) - x0
        smooth += c[k] * x1
    out: npt.NDArray[np.float64] = smooth * length + centre
    return out


def _chebyshev_coefficients(iterations: int, pass_band: float) -> npt.NDArray[np.float64]:
    """The windowed-sinc filter's Chebyshev coefficients, offset until its gain at the pass band
    is 1 within 1e-3.

    The offset is searched as VTK searches it (a Newton step that divides by the series'
    derivative in its argument, stopping within 1e-3): a more exact offset moves vertices by up
    to 0.5 mm from the surfaces VTK draws, and these are the surfaces users of the 3D view
    (and of 3D Slicer) know. ``tests/test_export_more.py`` holds the two equal.
    """
    theta = float(np.arccos(1.0 - 0.5 * pass_band))
    k = np.arange(iterations + 1)
    x = np.pi * k / (iterations + 1)
    window = sum(a * np.cos(m * x) for m, a in enumerate(_NUTTALL))
    at_pass_band = np.cos(k * theta)  # T_k(1 - pass_band / 2)
    sigma, c = 0.0, np.zeros(iterations + 1)
    for _ in range(500):
        t = theta + sigma
        c = window * np.where(k == 0, t / np.pi, 2.0 * np.sin(k * t) / (np.maximum(k, 1) * np.pi))
        gain = float(c @ at_pass_band)
        if abs(gain - 1.0) < 1e-3 or iterations < 2:
            break
        slope = np.zeros(iterations + 1)  # derivative series: d'_i = d'_{i+2} + 2 (i+1) c_{i+1}
        for i in range(iterations - 2, -1, -1):
            slope[i] = (slope[i + 2] if i + 2 <= iterations else 0.0) + 2 * (i + 1) * c[i + 1]
        sigma -= (gain - 1.0) / float(slope @ at_pass_band)
    return c


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
