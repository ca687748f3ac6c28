"""A gallery of synthetic lung and liver lesions beside a real lung tumour, to judge realism.

Writes ``benchmarks/results/synthetic_gallery.png``: axial slices through synthetic lesions of
several kinds and sizes, drawn by :mod:`medseg_gui.training.synthetic_lesions` with the
evaluation seed into the *test* hosts on their own grids (CRLM-CT-1006 at 0.8 x 0.8 x 5 mm, the
TotalSegmentator DICOM example at 0.98 x 0.98 x 2 mm, OpenKBP test patients at about
3.9 x 3.9 x 2.5 mm), each shown twice: plain, and with its mask's contour. The first pairs are the
real GTV of the IBSI lung patient (``ibsi_lung``, CC BY-NC 3.0: evaluation only, shown here,
never trained on). Lung lesions in a lung window (W 1500, L -600), liver lesions in a liver
window (W 350, L 60), each crop 3.2 times the lesion's extent (at least 48 mm).

Usage::

    python benchmarks/synthetic_gallery.py [--data ../shared/data] [--out PNG]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from medseg_gui.training.synthetic_data import EVAL_SEED, load_host, synthesize
from medseg_gui.training.synthetic_hosts import synthetic_hosts
from medseg_gui.training.synthetic_lesions import Lesion

ROOT = Path(__file__).resolve().parent.parent
WINDOWS = {"lung": (-1350.0, 150.0), "liver": (-115.0, 235.0)}
# (host, variants to draw from): the test hosts, enough variants for a spread of sizes
HOSTS = (("crlm_1006", 8), ("totalseg_dicom", 2), ("openkbp_pt_76", 1), ("openkbp_pt_22", 1),
         ("openkbp_pt_50", 1), ("openkbp_pt_113", 1))
# (organ, from OpenKBP's coarse apices?) -> how many: most lung lesions at 0.8 mm, where a
# reader can judge them, a few at OpenKBP's 3.9 mm, where most training lung lesions are
WANT = {("lung", False): 5, ("lung", True): 3, ("liver", False): 6}


def tile(hu: Any, mask: Any, spacing_kji: tuple[float, ...], organ: str) -> tuple[Any, Any]:
    """The axial slice through the lesion's largest cross-section, cropped round it."""
    k = int(np.argmax(mask.sum(axis=(1, 2))))
    jj, ii = np.nonzero(mask[k])
    cy, cx = (jj.min() + jj.max()) / 2, (ii.min() + ii.max()) / 2
    extent = max((jj.max() - jj.min() + 1) * spacing_kji[1],
                 (ii.max() - ii.min() + 1) * spacing_kji[2])
    half = max(3.2 * extent, 48.0) / 2
    hy, hx = int(half / spacing_kji[1]), int(half / spacing_kji[2])
    sl = (slice(max(int(cy) - hy, 0), int(cy) + hy + 1), slice(max(int(cx) - hx, 0),
                                                               int(cx) + hx + 1))
    lo, hi = WINDOWS[organ]
    img = np.clip((hu[k][sl] - lo) / (hi - lo), 0, 1)
    return img, mask[k][sl]


def pick(lesions: list[tuple[str, Any, Lesion, tuple[float, ...]]], organ: str,
         n: int) -> list[tuple[str, Any, Lesion, tuple[float, ...]]]:
    """``n`` lesions of ``organ`` spread over sizes and subtypes."""
    mine = sorted((x for x in lesions if x[2].organ == organ and x[2].mask.sum() >= 6),
                  key=lambda x: x[2].diameter_mm)
    chosen: list[tuple[str, Any, Lesion, tuple[float, ...]]] = []
    for q in np.linspace(0, len(mine) - 1, min(n, len(mine))):  # evenly over the sizes
        near = sorted(range(len(mine)), key=lambda i: abs(i - q))[:3]
        # of the three nearest in size, the subtype shown least so far
        best = min((i for i in near if mine[i] not in chosen), default=None,
                   key=lambda i: sum(c[2].subtype == mine[i][2].subtype for c in chosen))
        if best is not None:
            chosen.append(mine[best])
    return sorted(chosen, key=lambda x: x[2].diameter_mm)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" /
                                         "synthetic_gallery.png"))
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medseg_gui.io.imagefile import read_image
    from medseg_gui.training.interactive_data import lps_aligned

    data = Path(args.data)
    hosts = {h.host_id: h for h in synthetic_hosts(data, splits=("test",))}
    found: list[tuple[str, Any, Lesion, tuple[float, ...]]] = []
    for host_id, variants in HOSTS:
        if host_id not in hosts:
            continue
        image = load_host(hosts[host_id], (1.5, 1.5, 3.0), native=True)
        sp = image.geometry.spacing[::-1]
        for v in range(variants):
            hu, lesions = synthesize(image, EVAL_SEED, v)
            found += [(f"{host_id} v{v}", hu, les, sp) for les in lesions]
        print(f"{host_id}: {len(found)} lesions so far", flush=True)
    shown = []
    for (organ, coarse), n in WANT.items():
        shown += pick([x for x in found if x[0].startswith("openkbp") == coarse], organ, n)

    vol = read_image(data / "ibsi_lung" / "nifti" / "image" / "phantom.nii.gz")
    ref = read_image(data / "ibsi_lung" / "nifti" / "mask" / "mask.nii.gz")
    real_hu, g = lps_aligned(vol.array.astype(np.float32), vol.geometry)
    real_mask = lps_aligned(ref.array, vol.geometry)[0] > 0
    ks = np.flatnonzero(real_mask.any(axis=(1, 2)))
    panels: list[tuple[str, Any, Any]] = []
    for k in (int(ks[len(ks) // 3]), int(ks[2 * len(ks) // 3])):
        one = np.zeros_like(real_mask)
        one[k] = real_mask[k]
        img, m = tile(real_hu, one, g.spacing[::-1], "lung")
        panels.append((f"REAL: IBSI lung GTV (slice {k}), CC BY-NC", img, m))
    for where, hu, les, lesion_sp in shown:
        img, m = tile(hu, les.full_mask(hu.shape), lesion_sp, les.organ)
        juxta = ", juxta" if les.touches_border else ""
        panels.append((f"{les.organ} {les.subtype.replace('_', '-')} {les.diameter_mm:.0f} mm, "
                       f"{les.mean_hu:+.0f} HU{juxta}\n{where} ({lesion_sp[2]:.1f} mm)", img, m))
    pairs = 4
    rows = int(np.ceil(len(panels) / pairs))
    fig, axes = plt.subplots(rows, 2 * pairs, figsize=(2.3 * 2 * pairs, 2.55 * rows))
    for ax in axes.ravel():
        ax.axis("off")
    for n, (title, img, m) in enumerate(panels):
        a, b = axes.ravel()[2 * n], axes.ravel()[2 * n + 1]
        for ax in (a, b):
            ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        b.contour(m, [0.5], colors="r", linewidths=0.7)
        a.set_title(title, fontsize=6.5, loc="left")
    fig.suptitle("Synthetic lesions in held-out real CT (plain | mask contour), beside a real "
                 "lung tumour (IBSI lung phantom patient, CC BY-NC 3.0, evaluation only); "
                 f"seed {EVAL_SEED}", fontsize=9)
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}: {len(panels) - 2} synthetic lesions and the real GTV")


if __name__ == "__main__":
    main()
