"""Mask-correction figures: brush stamp time, history memory, fill-between-slices on real tumours.

* Per-stamp time of a 3D brush on a 512 x 512 x 300 uint8 label map (0.8 x 0.8 x 1.0 mm), ours
  (``BrushStroke``: the stamp's bounding box only, cached kernel, old values saved for undo)
  against the named baseline run in this same process, "naive full-volume mask": for each stamp,
  numpy computes the distance of every voxel of the volume to the centre and paints where it is
  within the radius. Both run on the same volume; the baseline does fewer stamps because each is
  slow. Median and p95 of each; the ratio is naive / ours.
* Memory held by the undo history after 500 brush strokes (10 mouse moves each).
* Fill between slices on the IBSI STS CT tumour masks: keep every 4th axial slice of the real
  mask, interpolate, report Dice against the full mask and seconds.

Usage: python benchmarks/bench_editing.py [--data ../shared/data] [--stamps 2000] [--naive 10]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.metrics import dice
from medseg_gui.core.segmentation import Segment, Segmentation
from medseg_gui.editing.base import spacing_kji
from medseg_gui.editing.brush import BrushSettings, BrushStroke
from medseg_gui.editing.constraints import PaintConstraint
from medseg_gui.editing.editor import SegmentEditor
from medseg_gui.editing.interpolate import fill_between_slices
from medseg_gui.io.imagefile import read_image

ROOT = Path(__file__).resolve().parent.parent
SHAPE = (300, 512, 512)
SPACING_IJK = (0.8, 0.8, 1.0)


def _walk(n: int, seed: int = 0) -> np.ndarray:
    """A random mouse walk of ``n`` continuous (i, j, k) points, ~2 mm apart."""
    rng = np.random.default_rng(seed)
    hi = np.array(SHAPE[::-1], dtype=float) - 1
    steps = rng.normal(0, 1.5, (n, 3))
    pts = np.cumsum(steps, axis=0) + hi / 2
    return np.abs((pts + hi) % (2 * hi) - hi)  # reflect at the walls


def ours_per_stamp(labelmap: np.ndarray, image: np.ndarray | None, settings: BrushSettings,
                   n: int) -> list[float]:
    stroke = BrushStroke(labelmap, spacing_kji(Geometry(SHAPE, SPACING_IJK)), settings, 1,
                         image=image)
    times = []
    for p in _walk(n):
        center = tuple(int(v) for v in np.rint(p[::-1]))
        t0 = time.perf_counter()
        stroke._stamp(center)
        times.append(time.perf_counter() - t0)
    stroke.finish()
    labelmap[:] = 0
    return times


def naive_per_stamp(labelmap: np.ndarray, diameter_mm: float, n: int) -> list[float]:
    """Baseline: a full-volume distance mask per stamp (numpy broadcasting)."""
    sp = np.asarray(SPACING_IJK[::-1])
    kk, jj, ii = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    r2 = (diameter_mm / 2.0) ** 2
    times = []
    for p in _walk(n):
        c = np.rint(p[::-1])
        t0 = time.perf_counter()
        d2 = ((kk - c[0]) * sp[0]) ** 2 + ((jj - c[1]) * sp[1]) ** 2 + ((ii - c[2]) * sp[2]) ** 2
        labelmap[d2 <= r2] = 1
        times.append(time.perf_counter() - t0)
    labelmap[:] = 0
    return times


def ms(times: list[float]) -> tuple[float, float]:
    return statistics.median(times) * 1e3, float(np.percentile(times, 95)) * 1e3


def history_memory(strokes: int) -> tuple[float, float, int, float]:
    """History bytes after ``strokes`` strokes, the dense-box equivalent, and commit time."""
    geom = Geometry(SHAPE, SPACING_IJK)
    seg = Segmentation.empty(geom, [Segment(1, "Tumour")])
    editor = SegmentEditor(seg)
    editor.brush = BrushSettings(10.0)
    rng = np.random.default_rng(1)
    hi = np.array(SHAPE[::-1], dtype=float) - 1
    commits, dense = [], 0
    for _ in range(strokes):
        p = rng.uniform(0, hi)
        editor.begin_stroke(p)
        for _ in range(10):  # ~5 mm per mouse move: a 5 cm stroke
            p = np.clip(p + rng.normal(0, 4.0, 3), 0, hi)
            editor.continue_stroke(p)
        t0 = time.perf_counter()
        edit = editor.end_stroke()
        commits.append(time.perf_counter() - t0)
        if edit is not None and edit.region is not None:
            dense += 2 * int(np.prod([r.stop - r.start for r in edit.region]))
    return (editor.history.nbytes / 2**20, dense / 2**20, len(editor.history),
            statistics.median(commits) * 1e3)


def fill_between(data: Path) -> list[tuple[str, int, int, float, float, float]]:
    rows = []
    for case in sorted((data / "ibsi_sts/nifti").glob("STS_*")):
        mask_file = case / "CT_mask.nii.gz"
        if not mask_file.is_file():
            continue
        vol = read_image(mask_file)
        full = (vol.array != 0).astype(np.uint8)
        ks = np.flatnonzero(full.any(axis=(1, 2)))
        keep = sorted({*range(int(ks[0]), int(ks[-1]) + 1, 4), int(ks[-1])})
        seg = Segmentation(np.zeros_like(full), vol.geometry, [Segment(1, "Tumour")])
        seg.labelmap[keep] = full[keep]
        before = dice(seg.labelmap == 1, full == 1)
        t0 = time.perf_counter()
        change = fill_between_slices(seg, 1)
        seconds = time.perf_counter() - t0
        assert change.region is not None and change.new is not None
        seg.labelmap[change.region] = change.new
        rows.append((case.name, len(ks), len(keep), before, dice(seg.labelmap == 1, full == 1),
                     seconds))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--stamps", type=int, default=2000)
    parser.add_argument("--naive", type=int, default=10)
    parser.add_argument("--strokes", type=int, default=500)
    args = parser.parse_args()

    labelmap = np.zeros(SHAPE, dtype=np.uint8)
    image = np.random.default_rng(2).integers(-200, 400, SHAPE, dtype=np.int16)
    print(f"label map {SHAPE[::-1]} (i, j, k) uint8, spacing {SPACING_IJK} mm")
    print(f"{'brush stamp':<46}{'median ms':>10}{'p95 ms':>10}{'naive/ours':>12}")
    naive_cache: dict[float, tuple[float, float]] = {}
    for d in (10.0, 20.0):
        naive_cache[d] = ms(naive_per_stamp(labelmap, d, args.naive))
        med, p95 = naive_cache[d]
        print(f"{f'naive full-volume mask, {d:g} mm ball (baseline)':<46}{med:>10.2f}{p95:>10.2f}"
              f"{'1.0':>12}")
        for label, settings, img in (
            (f"ours, {d:g} mm ball", BrushSettings(d), None),
            (f"ours, {d:g} mm ball, HU-limited", BrushSettings(
                d, constraint=PaintConstraint.preset("Soft tissue")), image),
        ):
            m, p = ms(ours_per_stamp(labelmap, img, settings, args.stamps))
            print(f"{label:<46}{m:>10.3f}{p:>10.3f}{med / m:>12.0f}")

    mb, dense_mb, n, commit_ms = history_memory(args.strokes)
    print(f"\nundo history, {n} strokes of a 10 mm ball (10 mouse moves each): {mb:.2f} MB "
          f"({mb * 1024 / n:.1f} kB/stroke); baseline dense old+new arrays of each stroke's "
          f"changed box: {dense_mb:.1f} MB; median commit at mouse release {commit_ms:.2f} ms")

    print("\nfill between slices (shape-based, signed distance), every 4th axial slice kept")
    print(f"{'case':<10}{'slices':>8}{'kept':>6}{'Dice kept':>11}{'Dice filled':>13}{'seconds':>9}")
    rows = fill_between(args.data)
    for name, n_sl, kept, before, after, secs in rows:
        print(f"{name:<10}{n_sl:>8}{kept:>6}{before:>11.3f}{after:>13.3f}{secs:>9.3f}")
    if rows:
        print(f"{'mean':<10}{'':>8}{'':>6}{statistics.mean(r[3] for r in rows):>11.3f}"
              f"{statistics.mean(r[4] for r in rows):>13.3f}"
              f"{statistics.mean(r[5] for r in rows):>9.3f}   ({len(rows)} cases)")


if __name__ == "__main__":
    main()
