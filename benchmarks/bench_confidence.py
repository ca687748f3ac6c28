"""Low-confidence regions on a CT-sized probability map: ours against a named baseline.

The map is 512 x 512 x 300 (0.8 x 0.8 x 1.5 mm), zero except for the real STS_001 sarcoma mask
smoothed with a Gaussian (sigma 1.5 voxels, so the 0.3-0.7 band is its rim), placed in the
middle, as the model's float16 output looks. Baseline, run in this same process, "whole-volume
scipy": numpy's float16 comparison for the band, ``ndimage.label`` of the whole volume, then
``ndimage.sum_labels`` / ``center_of_mass`` per region. Ours is
:func:`~medseg_gui.inference.confidence.uncertain_regions` (bit-pattern band, labelling inside
the band's bounding box, one ``bincount`` per statistic). Median of ``--repeat`` runs each; the
ratio is baseline / ours. A second line times ours on uniform noise (the whole volume in the
band), the worst case.

Usage: python benchmarks/bench_confidence.py [--data ../shared/data] [--repeat 5]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage
from timing import median_seconds  # benchmarks/timing.py (scripts run with benchmarks/ on sys.path)

from medseg_gui.core.geometry import Geometry
from medseg_gui.inference.confidence import uncertain_regions
from medseg_gui.io.imagefile import read_image

ROOT = Path(__file__).resolve().parent.parent
SHAPE = (300, 512, 512)
GEOMETRY = Geometry(SHAPE, (0.8, 0.8, 1.5))


def probability_map(data: Path) -> np.ndarray:
    mask = read_image(data / "ibsi_sts" / "nifti" / "STS_001" / "CT_mask.nii.gz").array
    p = np.zeros(SHAPE, np.float16)
    k, j, i = (s // 2 - n // 2 for s, n in zip(SHAPE, mask.shape, strict=True))
    smooth = ndimage.gaussian_filter(mask.astype(np.float32), 1.5)
    p[k:k + mask.shape[0], j:j + mask.shape[1], i:i + mask.shape[2]] = smooth
    return p


def baseline(p: np.ndarray) -> int:
    band = (p >= 0.3) & (p <= 0.7)
    labels, n = ndimage.label(band, structure=np.ones((3, 3, 3)))
    index = np.arange(1, n + 1)
    ndimage.sum_labels(band, labels, index)
    ndimage.mean(p.astype(np.float32), labels, index)
    ndimage.center_of_mass(band, labels, index)
    return int(n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    p = probability_map(args.data)
    regions = uncertain_regions(p, GEOMETRY)
    ours = median_seconds(lambda: uncertain_regions(p, GEOMETRY), args.repeat)
    base = median_seconds(lambda: baseline(p), args.repeat)
    print(f"sarcoma rim, {'x'.join(map(str, SHAPE))}: ours {ours:.3f} s, whole-volume scipy "
          f"{base:.3f} s, ratio {base / ours:.1f}x; {len(regions)} region(s), largest "
          f"{regions[0].volume_ml:.1f} mL")
    noise = np.random.default_rng(0).random(SHAPE, dtype=np.float32).astype(np.float16)
    worst = median_seconds(lambda: uncertain_regions(noise, GEOMETRY), 1)
    print(f"uniform noise (worst case), ours: {worst:.2f} s")


if __name__ == "__main__":
    main()
