"""Fill between slices: our shape-based interpolation against ITK's contour interpolator.

On real masks from the shared data (the IBSI sarcoma GTVs, the IBSI lung GTV and OpenKBP head and
neck structures), every ``--step``-th slice of one axis of the real mask is kept, the gaps are
filled by each method, and the result is compared with the full mask (Dice) and timed (seconds,
the fill alone). The baseline is ours (``medseg_gui.editing.interpolate.fill_between_slices``,
what the Segment menu's "Fill between slices" runs), timed in this same process on the same
masks. ITK's filter is the one 3D Slicer's "Fill between slices" uses, from the PyPI wheel
``itk-morphologicalcontourinterpolation`` (optional; the script says so when it is missing),
with its defaults (distance-transform interpolation, heuristic alignment) along the same axis;
its one-off start (loading ITK's wrapped modules) is reported on its own line.

Usage: python benchmarks/bench_interpolation.py [--data ../shared/data] [--step 4] [--axis k]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.metrics import dice
from medseg_gui.core.segmentation import Segment, Segmentation
from medseg_gui.editing.base import ViewAxis
from medseg_gui.editing.interpolate import fill_between_slices
from medseg_gui.io.imagefile import read_image

ROOT = Path(__file__).resolve().parent.parent
AXES = {"k": ViewAxis.AXIAL, "j": ViewAxis.CORONAL, "i": ViewAxis.SAGITTAL}


def masks(data: Path, openkbp: int) -> Iterator[tuple[str, Segmentation]]:
    """Real binary masks as one-segment segmentations on their own grid."""
    files = sorted((data / "ibsi_sts/nifti").glob("STS_*/CT_mask.nii.gz"))
    files += sorted((data / "ibsi_lung/nifti/mask").glob("*.nii*"))
    for case in sorted((data / "openkbp").glob("train_pt_*"), key=lambda p: int(
            p.name.rsplit("_", 1)[1]))[:openkbp]:
        files += [case / "PTV70.nii.gz", case / "Mandible.nii.gz"]
    for f in files:
        if not f.is_file():
            continue
        vol = read_image(f)
        full = (vol.array != 0).astype(np.uint8)
        if full.any():
            name = f"{f.parent.name}/{f.name.split('.')[0]}"
            yield name, Segmentation(full, vol.geometry, [Segment(1, "Mask")])


def sparse_copy(full: Segmentation, axis: int, step: int) -> Segmentation:
    """``full`` with only every ``step``-th drawn slice across array ``axis`` (and the last)."""
    lm = np.moveaxis(full.labelmap, axis, 0)
    ks = np.flatnonzero(lm.reshape(lm.shape[0], -1).any(axis=1))
    keep = sorted({*range(int(ks[0]), int(ks[-1]) + 1, step), int(ks[-1])})
    out = np.zeros_like(lm)
    out[keep] = lm[keep]
    return Segmentation(np.ascontiguousarray(np.moveaxis(out, 0, axis)), full.geometry,
                        list(full.segments))


def ours(seg: Segmentation, axis: ViewAxis) -> np.ndarray:
    change = fill_between_slices(seg, 1, axis)
    out = seg.labelmap.copy()
    if change.region is not None and change.new is not None:
        out[change.region] = change.new
    return out


def itk_filter() -> tuple[Callable[[Segmentation, ViewAxis], np.ndarray], float] | None:
    """ITK's interpolator as ``fill(seg, axis)`` and the seconds its start took, or ``None``."""
    t0 = time.perf_counter()
    try:
        import itk

        cls = itk.MorphologicalContourInterpolator
    except (ImportError, AttributeError):
        return None

    def fill(seg: Segmentation, axis: ViewAxis) -> np.ndarray:
        image = itk.image_from_array(np.ascontiguousarray(seg.labelmap))
        f = cls[type(image)].New(Input=image)
        f.SetAxis(2 - int(axis))  # ITK counts axes i, j, k; ViewAxis counts array axes k, j, i
        f.SetLabel(1)
        f.Update()
        out: Any = itk.array_from_image(f.GetOutput())
        return np.asarray(out, dtype=seg.labelmap.dtype)

    probe = Segmentation(np.zeros((3, 4, 4), np.uint8), Geometry((3, 4, 4)), [Segment(1, "p")])
    probe.labelmap[0, 1:3, 1:3] = probe.labelmap[2, 1:3, 1:3] = 1
    fill(probe, ViewAxis.AXIAL)  # loads ITK's wrapped modules once
    return fill, time.perf_counter() - t0


def timed(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--step", type=int, default=4)
    parser.add_argument("--axis", choices=sorted(AXES), default="k")
    parser.add_argument("--openkbp", type=int, default=5, help="OpenKBP patients to include")
    args = parser.parse_args()
    axis = AXES[args.axis]
    itk_fill = itk_filter()
    if itk_fill is None:
        print("ITK's MorphologicalContourInterpolator is not installed "
              "(pip install itk-morphologicalcontourinterpolation): ours only")
    else:
        print(f"ITK start (loading its wrapped modules, once per process): {itk_fill[1]:.1f} s")
    print(f"every {args.step}th slice across {args.axis} kept; Dice against the full mask")
    print(f"{'mask':<26}{'voxels':>9}{'kept':>7}{'ours Dice':>11}{'ours s':>8}"
          f"{'ITK Dice':>10}{'ITK s':>8}")
    rows = []
    for name, full in masks(args.data, args.openkbp):
        sparse = sparse_copy(full, int(axis), args.step)
        truth = full.labelmap == 1
        mine, t_mine = timed(lambda s=sparse: ours(s, axis))
        row = [dice(mine == 1, truth), t_mine]
        if itk_fill is not None:
            theirs, t_theirs = timed(lambda s=sparse: itk_fill[0](s, axis))
            row += [dice(theirs == 1, truth), t_theirs]
        rows.append(row)
        kept = float(sparse.labelmap.sum()) / float(truth.sum())
        cells = "".join(f"{v:>10.3f}{t:>8.2f}" for v, t in zip(row[::2], row[1::2], strict=True))
        print(f"{name:<26}{int(truth.sum()):>9}{kept:>7.0%} {cells}")
    means = [statistics.mean(r[n] for r in rows) for n in range(len(rows[0]))]
    cells = "".join(f"{v:>10.3f}{t:>8.2f}" for v, t in zip(means[::2], means[1::2], strict=True))
    print(f"{f'mean of {len(rows)} masks':<26}{'':>9}{'':>7} {cells}")
    if itk_fill is not None:
        wins = sum(r[2] > r[0] for r in rows)
        print(f"ITK's Dice higher on {wins} of {len(rows)} masks; "
              f"median difference (ITK - ours) "
              f"{statistics.median(r[2] - r[0] for r in rows):+.4f}")


if __name__ == "__main__":
    main()
