"""Segment surfaces for the 3D view: the one builder against the former VTK pipeline.

Since issue 20 the 3D view draws :func:`medseg_gui.io.surfaces.label_mesh` (scikit-image
marching cubes, then windowed-sinc smoothing in numpy), the mesh STL/OBJ export writes. The
named baseline, run in this same process on the same label maps, is the pipeline the view used
before: ``vtkDiscreteFlyingEdges3D`` and ``vtkWindowedSincPolyDataFilter`` (same settings) on a
padded crop of each segment, then normals. Seconds to build every segment's surface (median of
``--repeat`` runs), triangles, and the enclosed volume of each.

Usage: python benchmarks/bench_surfaces.py [--data ../shared/data] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkCommonTransforms import vtkTransform
from vtkmodules.vtkFiltersCore import vtkPolyDataNormals, vtkWindowedSincPolyDataFilter
from vtkmodules.vtkFiltersGeneral import vtkDiscreteFlyingEdges3D, vtkTransformFilter

from medseg_gui.core.geometry import Geometry
from medseg_gui.io.label_nifti import read_label_nifti
from medseg_gui.io.surfaces import PASS_BAND, SMOOTHING_ITERATIONS
from medseg_gui.rendering.imagedata import to_vtk_image
from medseg_gui.rendering.surfaces import build_surfaces, grid_to_world_matrix

ROOT = Path(__file__).resolve().parent.parent


def vtk_pipeline(labelmap: np.ndarray, geometry: Geometry) -> list[Any]:
    """Baseline: the 3D view's surfaces before issue 20 (VTK contour, smoothing, normals)."""
    out = []
    for label in (int(v) for v in np.unique(labelmap) if v != 0):
        mask = labelmap == label
        idx = np.argwhere(mask)
        (k0, j0, i0), (k1, j1, i1) = idx.min(axis=0), idx.max(axis=0) + 1
        crop = np.pad(mask[k0:k1, j0:j1, i0:i1].astype(np.uint8), 1)
        image = to_vtk_image(crop, Geometry(crop.shape, geometry.spacing), with_direction=False)
        sx, sy, sz = geometry.spacing
        image.SetOrigin((i0 - 1) * sx, (j0 - 1) * sy, (k0 - 1) * sz)
        contour = vtkDiscreteFlyingEdges3D()
        contour.SetInputData(image)
        contour.SetValue(0, 1.0)
        contour.ComputeNormalsOff()
        contour.ComputeGradientsOff()
        contour.ComputeScalarsOff()
        smooth = vtkWindowedSincPolyDataFilter()
        smooth.SetInputConnection(contour.GetOutputPort())
        smooth.SetNumberOfIterations(SMOOTHING_ITERATIONS)
        smooth.SetPassBand(PASS_BAND)
        smooth.BoundarySmoothingOff()
        smooth.FeatureEdgeSmoothingOff()
        smooth.NonManifoldSmoothingOn()
        smooth.NormalizeCoordinatesOn()
        transform = vtkTransform()
        transform.SetMatrix(grid_to_world_matrix(geometry).ravel().tolist())
        to_world = vtkTransformFilter()
        to_world.SetInputConnection(smooth.GetOutputPort())
        to_world.SetTransform(transform)
        normals = vtkPolyDataNormals()
        normals.SetInputConnection(to_world.GetOutputPort())
        normals.SplittingOff()
        normals.ConsistencyOn()
        normals.AutoOrientNormalsOn()
        normals.Update()
        out.append(normals.GetOutput())
    return out


def ours(labelmap: np.ndarray, geometry: Geometry) -> list[Any]:
    return [s.polydata for s in build_surfaces(labelmap, geometry, [])]


def volume_ml(polys: list[Any]) -> float:
    total = 0.0
    for poly in polys:
        pts = vtk_to_numpy(poly.GetPoints().GetData())
        tri = pts[vtk_to_numpy(poly.GetPolys().GetConnectivityArray()).reshape(-1, 3)]
        total += float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum())
    return abs(total) / 6.0 / 1000.0


def run(fn: Callable[[np.ndarray, Geometry], list[Any]], labelmap: np.ndarray,
        geometry: Geometry, repeat: int) -> tuple[float, int, float]:
    times, polys = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        polys = fn(labelmap, geometry)
        times.append(time.perf_counter() - t0)
    return (statistics.median(times), sum(int(p.GetNumberOfPolys()) for p in polys),
            volume_ml(polys))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cases = [args.data / "ibsi_sts/nifti" / c / "CT_mask.nii.gz"
             for c in ("STS_008", "STS_001", "STS_013", "STS_020")]
    cases.append(args.data / "totalseg_example/example_seg.nii.gz")
    print(f"{'label map':<34}{'segs':>5}{'VTK s':>8}{'ours s':>8}{'ours/VTK':>9}"
          f"{'VTK tris':>10}{'our tris':>10}{'VTK mL':>9}{'our mL':>9}")
    for path in cases:
        seg = read_label_nifti(path)
        n = len([v for v in np.unique(seg.labelmap) if v])
        base = run(vtk_pipeline, seg.labelmap, seg.geometry, args.repeat)
        mine = run(ours, seg.labelmap, seg.geometry, args.repeat)
        name = "/".join(path.parts[-2:])
        print(f"{name:<34}{n:>5}{base[0]:>8.2f}{mine[0]:>8.2f}{mine[0] / base[0]:>9.2f}"
              f"{base[1]:>10}{mine[1]:>10}{base[2]:>9.1f}{mine[2]:>9.1f}")


if __name__ == "__main__":
    main()
