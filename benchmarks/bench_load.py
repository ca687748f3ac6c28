"""Index + load every shared DICOM CT series, against SimpleITK's ImageSeriesReader.

Baseline (SimpleITK's documented usage, GDCM underneath): ``GetGDCMSeriesIDs`` and
``GetGDCMSeriesFileNames`` on the folder (which reads headers and sorts by position), then
``ImageSeriesReader.Execute``. Ours: ``index_folder`` (patients/studies/series tree for the
browser) then ``load_series``. Each is timed cold-ish (first run discarded) and warm, median of
``--repeat`` runs, in this one process. A ratio < 1 means ours is faster.

Usage: python benchmarks/bench_load.py [--data ../shared/data] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from timing import median_seconds  # benchmarks/timing.py (scripts run with benchmarks/ on sys.path)

from medseg_gui.io.dicom_index import index_folder
from medseg_gui.io.dicom_series import load_series

ROOT = Path(__file__).resolve().parent.parent


def ours(folder: Path) -> np.ndarray:
    index = index_folder(folder)
    (series,) = [s for s in index.image_series() if s.modality == "CT"]
    return load_series(series.files, headers=series.headers).array


def simpleitk(folder: Path) -> np.ndarray:
    reader = sitk.ImageSeriesReader()
    (uid,) = reader.GetGDCMSeriesIDs(str(folder))
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), uid))
    return sitk.GetArrayFromImage(reader.Execute())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    folders = {
        "STS_008 (demo)": args.data / "ibsi_sts/dicom/STS_008/CT/image",
        "STS_001": args.data / "ibsi_sts/dicom/STS_001/CT/image",
        "IBSI lung": args.data / "ibsi_lung/dicom/image",
        "CRLM-1004": args.data / "crlm_unlabeled/CRLM-CT-1004/image",
        "CRLM-1006": args.data / "crlm_unlabeled/CRLM-CT-1006/image",
        "TotalSeg (JPEG 2000)": args.data / "totalseg_example/example_ct_dicom",
    }
    print(f"{'series':<22}{'size':>16}{'ours s':>9}{'SimpleITK s':>13}{'ratio':>8}  same voxels")
    ratios = []
    for name, folder in folders.items():
        a, b = ours(folder), simpleitk(folder)
        same = a.shape == b.shape and bool(np.array_equal(a, b))
        t_ours = median_seconds(lambda f=folder: ours(f), args.repeat)
        t_sitk = median_seconds(lambda f=folder: simpleitk(f), args.repeat)
        ratios.append(t_ours / t_sitk)
        size = "x".join(map(str, a.shape[::-1]))
        print(f"{name:<22}{size:>16}{t_ours:>9.3f}{t_sitk:>13.3f}{t_ours / t_sitk:>8.2f}  {same}")
    print(f"geometric mean ratio (ours / SimpleITK): {statistics.geometric_mean(ratios):.2f}")


if __name__ == "__main__":
    main()
