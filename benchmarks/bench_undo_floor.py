"""Memory of the undo floor: bytes per step of large edits on a 512 x 512 x K uint8 label map.

The real STS_001 tumour mask (IBSI soft-tissue sarcoma set) sits in the middle of the map. For
each kind of large edit the script prints the bytes one undo step holds (:attr:`Edit.nbytes`)
and what the floor of :data:`~medseg_gui.editing.history.MIN_STEPS` such steps holds, against
the baseline run in this same process, the history with a floor of one step (the behaviour
before the floor): how many steps each keeps under the default cap.

* grow 10 mm: the tumour grown by 10 mm (the product's ``grow_shrink``);
* fill half: label 2 painted over half of the volume (a threshold paint of the whole body);
* random: every voxel set to a random label 0-255 (incompressible new values);
* random again: the same on top of "random" (incompressible old and new values: the worst case).

Usage: python benchmarks/bench_undo_floor.py [--data ../shared/data] [--slices 100]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.segmentation import Segment, Segmentation
from medseg_gui.editing.base import Change
from medseg_gui.editing.history import DEFAULT_MAX_BYTES, MIN_STEPS, Edit, History
from medseg_gui.editing.morphology import grow_shrink
from medseg_gui.io.imagefile import read_image

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024  # MiB, as the figures print


def demo_segmentation(data: Path, shape: tuple[int, int, int]) -> Segmentation:
    mask = read_image(data / "ibsi_sts/nifti/STS_001/CT_mask.nii.gz")
    tumour = mask.array.astype(np.uint8)
    lm = np.zeros(shape, np.uint8)
    k, j, i = ((s - t) // 2 for s, t in zip(shape, tumour.shape, strict=True))
    lm[k:k + tumour.shape[0], j:j + tumour.shape[1], i:i + tumour.shape[2]] = tumour
    return Segmentation(lm, Geometry(shape, mask.geometry.spacing),
                        [Segment(1, "Tumour"), Segment(2, "Body")])


def edits(seg: Segmentation) -> dict[str, Edit]:
    shape = seg.labelmap.shape
    full = (slice(0, shape[0]), slice(0, shape[1]), slice(0, shape[2]))
    half = seg.labelmap.copy()
    half[:, :, : shape[2] // 2] = 2
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(2)]
    changes = {"grow 10 mm": (seg.labelmap, grow_shrink(seg, 1, 10.0)),
               "fill half": (seg.labelmap, Change("fill half", full, half)),
               "random": (seg.labelmap, Change("random", full, noise[0])),
               "random again": (noise[0], Change("random again", full, noise[1]))}
    out = {}
    for name, (labelmap, change) in changes.items():
        assert change.region is not None
        edit = Edit.from_arrays(name, change.region, labelmap[change.region], change.new)
        assert edit is not None
        out[name] = edit
    return out


def steps_kept(edit: Edit, min_steps: int, n: int = 8) -> int:
    history = History(DEFAULT_MAX_BYTES, min_steps=min_steps)
    for _ in range(n):
        history.push(edit)
    return len(history)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--slices", type=int, default=100)
    args = ap.parse_args()
    shape = (args.slices, 512, 512)
    seg = demo_segmentation(args.data, shape)
    n = int(np.prod(shape))
    print(f"label map 512 x 512 x {args.slices} uint8 ({n / MB:.1f} MB), cap "
          f"{DEFAULT_MAX_BYTES // MB} MB, floor {MIN_STEPS} steps; baseline: floor of 1 step")
    print(f"{'edit':<12} {'voxels':>11} {'MB/step':>9} {'floor MB':>9} "
          f"{'kept of 8 (floor)':>18} {'kept of 8 (baseline)':>21}")
    for name, edit in edits(seg).items():
        print(f"{name:<12} {edit.n_changed:>11,} {edit.nbytes / MB:>9.2f} "
              f"{MIN_STEPS * edit.nbytes / MB:>9.1f} {steps_kept(edit, MIN_STEPS):>18} "
              f"{steps_kept(edit, 1):>21}")
    bound = MIN_STEPS * (n / 8 + 2 * n) / MB
    print(f"bound: max(cap, {MIN_STEPS} x (N/8 + 2N) bytes) = max({DEFAULT_MAX_BYTES // MB}, "
          f"{bound:.1f}) MB for uint8 (x 4.125/2.125 for uint16)")


if __name__ == "__main__":
    main()
