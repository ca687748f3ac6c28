"""Segment surfaces for the 3D view: the exported mesh, wrapped for VTK (runs on a worker thread).

The mesh is :func:`medseg_gui.io.surfaces.label_mesh`, the one surface builder of the product
(marching cubes, then windowed-sinc smoothing, in LPS mm), so the surface the 3D view draws is
the one STL/OBJ export writes. This module only hands its points and triangles to a
``vtkPolyData`` and adds point normals for lighting: the builder already winds the triangles
outwards (positive signed volume, also for a direction matrix with a negative determinant), so
the normals filter must not reorder or flip them, or the drawn mesh would differ from the
exported one.

VTK filters may run off the GUI thread as long as each thread works on its own data; only
rendering must stay on the GUI thread. The label map is read, never modified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkPolyDataNormals

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.progress import Progress, check, no_progress
from medseg_gui.core.segmentation import Segment
from medseg_gui.io.surfaces import Mesh, label_mesh


@dataclass
class Surface:
    """One segment's mesh (LPS mm) and how to draw it."""

    label: int
    name: str
    color: tuple[int, int, int]
    polydata: vtkPolyData

    @property
    def n_triangles(self) -> int:
        return int(self.polydata.GetNumberOfPolys())


def grid_to_world_matrix(geometry: Geometry) -> npt.NDArray[np.float64]:
    """4x4 matrix from direction-less grid coordinates (``spacing * ijk``) to LPS mm."""
    m = np.eye(4)
    m[:3, :3] = geometry.direction_matrix
    m[:3, 3] = np.asarray(geometry.origin, dtype=np.float64)
    return m


def mesh_polydata(mesh: Mesh) -> vtkPolyData:
    """``mesh`` as a ``vtkPolyData`` (float64 points, its triangles in their order) with point
    normals for lighting."""
    poly = vtkPolyData()
    points = vtkPoints()
    xyz = np.ascontiguousarray(mesh.vertices, np.float64)
    points.SetData(numpy_to_vtk(xyz, deep=True))  # type: ignore[no-untyped-call]
    poly.SetPoints(points)
    cells = vtkCellArray()
    offsets = np.arange(0, 3 * len(mesh.faces) + 1, 3, dtype=np.int64)
    ids = np.ascontiguousarray(mesh.faces.ravel())
    cells.SetData(numpy_to_vtkIdTypeArray(offsets, deep=True),  # type: ignore[no-untyped-call]
                  numpy_to_vtkIdTypeArray(ids, deep=True))  # type: ignore[no-untyped-call]
    poly.SetPolys(cells)
    normals = vtkPolyDataNormals()
    normals.SetInputData(poly)
    normals.ComputeCellNormalsOff()
    normals.SplittingOff()  # splitting would duplicate points
    normals.ConsistencyOff()  # the builder's winding is already outwards: keep it
    normals.AutoOrientNormalsOff()
    normals.Update()
    out = vtkPolyData()
    out.ShallowCopy(normals.GetOutput())
    return out


def polydata_triangles(poly: vtkPolyData) -> npt.NDArray[np.float64]:
    """The triangles of ``poly`` as ``(m, 3, 3)`` LPS points (to compare with an STL file)."""
    points = vtk_to_numpy(poly.GetPoints().GetData())  # type: ignore[no-untyped-call]
    ids = vtk_to_numpy(poly.GetPolys().GetConnectivityArray())  # type: ignore[no-untyped-call]
    faces = ids.reshape(-1, 3)
    out: npt.NDArray[np.float64] = points[faces]
    return out


def segment_surface(labelmap: npt.NDArray[Any], geometry: Geometry, label: int,
                    smoothing: bool = True) -> vtkPolyData | None:
    """The surface of the voxels equal to ``label`` (``None`` if there are none)."""
    mesh = label_mesh(labelmap, geometry, label, smoothing=smoothing)
    return mesh_polydata(mesh) if len(mesh.faces) else None


def build_surfaces(labelmap: npt.NDArray[Any], geometry: Geometry, segments: list[Segment],
                   progress: Progress = no_progress, smoothing: bool = True) -> list[Surface]:
    """Surfaces of every segment present in ``labelmap`` (labels without a segment row too).

    Raises :class:`~medseg_gui.core.progress.Cancelled` when ``progress`` says stop.
    """
    labels = [int(v) for v in np.unique(labelmap) if v != 0]
    table = {s.label: s for s in segments}
    out: list[Surface] = []
    for n, label in enumerate(labels):
        seg = table.get(label)
        check(progress, n / max(1, len(labels)),
              f"Building surface {n + 1}/{len(labels)}: {seg.name if seg else label}")
        poly = segment_surface(labelmap, geometry, label, smoothing)
        if poly is None or poly.GetNumberOfPolys() == 0:
            continue
        out.append(Surface(label, seg.name if seg else f"Label {label}",
                           seg.color if seg else (255, 0, 255), poly))
    check(progress, 1.0, f"Built {len(out)} surface(s)")
    return out
