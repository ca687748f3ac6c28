"""Smooth surfaces of a label map, one mesh per segment (plain Python, runs on a worker thread).

Each segment is cropped to its bounding box (plus a one-voxel margin so the surface closes),
contoured with ``vtkDiscreteFlyingEdges3D`` and smoothed with
``vtkWindowedSincPolyDataFilter`` (Taubin-style smoothing that does not shrink the mesh) in
the direction-less grid frame (``spacing * ijk``, see :mod:`medseg_gui.rendering.imagedata`),
then moved to LPS by :func:`grid_to_world_matrix` (the matrix the 3D scene gives the volume, so
surfaces, volume and slices line up). Normals are computed after that move and oriented
outwards: a direction matrix with a negative determinant (a mirrored acquisition) reverses the
triangles' winding, which would otherwise light the surface from inside.

VTK filters may run off the GUI thread as long as each thread works on its own data; only
rendering must stay on the GUI thread. The label map is read, never modified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from vtkmodules.vtkCommonDataModel import vtkPolyData
from vtkmodules.vtkCommonTransforms import vtkTransform
from vtkmodules.vtkFiltersCore import vtkPolyDataNormals, vtkWindowedSincPolyDataFilter
from vtkmodules.vtkFiltersGeneral import vtkDiscreteFlyingEdges3D, vtkTransformFilter

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.progress import Progress, check, no_progress
from medseg_gui.core.segmentation import Segment
from medseg_gui.rendering.imagedata import to_vtk_image

# Windowed-sinc settings as 3D Slicer uses for "smoothing factor 0.5": a mild smoothing that
# removes the voxel staircase but keeps small lesions' shape.
SMOOTHING_ITERATIONS = 20
PASS_BAND = 0.01


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


def _bounding_box(mask: npt.NDArray[np.bool_]) -> tuple[slice, ...] | None:
    spans = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        if hit.size == 0:
            return None
        spans.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(spans)


def segment_surface(labelmap: npt.NDArray[Any], geometry: Geometry, label: int,
                    smoothing: bool = True) -> vtkPolyData | None:
    """The smoothed surface of the voxels equal to ``label`` (``None`` if there are none)."""
    mask = labelmap == label
    box = _bounding_box(mask)
    if box is None:
        return None
    # One voxel of background around the crop closes the surface at the crop's faces.
    k0, j0, i0 = (s.start for s in box)
    crop = np.pad(mask[box].astype(np.uint8), 1)
    sub = Geometry(shape=crop.shape, spacing=geometry.spacing)
    image = to_vtk_image(crop, sub, with_direction=False)
    sx, sy, sz = geometry.spacing
    image.SetOrigin((i0 - 1) * sx, (j0 - 1) * sy, (k0 - 1) * sz)
    contour = vtkDiscreteFlyingEdges3D()
    contour.SetInputData(image)
    contour.SetValue(0, 1.0)
    contour.ComputeNormalsOff()
    contour.ComputeGradientsOff()
    contour.ComputeScalarsOff()
    last: Any = contour
    if smoothing:
        smooth = vtkWindowedSincPolyDataFilter()
        smooth.SetInputConnection(contour.GetOutputPort())
        smooth.SetNumberOfIterations(SMOOTHING_ITERATIONS)
        smooth.SetPassBand(PASS_BAND)
        smooth.BoundarySmoothingOff()
        smooth.FeatureEdgeSmoothingOff()
        smooth.NonManifoldSmoothingOn()
        smooth.NormalizeCoordinatesOn()
        last = smooth
    transform = vtkTransform()
    transform.SetMatrix(grid_to_world_matrix(geometry).ravel().tolist())
    to_world = vtkTransformFilter()
    to_world.SetInputConnection(last.GetOutputPort())
    to_world.SetTransform(transform)
    normals = vtkPolyDataNormals()
    normals.SetInputConnection(to_world.GetOutputPort())
    normals.SplittingOff()
    normals.ConsistencyOn()
    normals.AutoOrientNormalsOn()  # closed surfaces: outwards, cells reordered to match
    normals.Update()
    out = vtkPolyData()
    out.ShallowCopy(normals.GetOutput())
    return out


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
