"""The intended-use guard's measures and decisions on every shared study.

For each study: the image measures (:func:`~medseg_gui.inference.guard.measure_study`), and the
result measures (predicted volume, air margin) of the reference tumour mask where there is one
(the sarcomas) or, with ``--predict``, of the automatic model's own mask on the studies it was
not made for. A study is *flagged* when :func:`check_study` or :func:`check_result` gives a
reason. The summary counts flagged studies per group (no sarcoma may be flagged) and the ranges
the card's ``trained_on`` quotes; the time column compares the guard's cost with loading the
study (the baseline: the guard should cost a fraction of it).

Run: ``python benchmarks/eval_guard.py [--predict] [--model sts-tumour-unet:1.1.0]``
"""

from __future__ import annotations

import argparse
import glob
import os
import time
from pathlib import Path

import numpy as np

from medseg_gui.inference.guard import (
    air_margin,
    check_result,
    check_study,
    intended_use,
    measure_study,
)
from medseg_gui.inference.models import resolve_model
from medseg_gui.io.loader import load_volume

DATA = Path(os.environ.get("MEDSEG_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared"
                           / "data"))


def studies() -> list[tuple[str, str, Path, Path | None]]:
    """(group, name, image, reference mask or None) for every shared CT."""
    out = []
    for case in sorted((DATA / "ibsi_sts" / "nifti").glob("STS_*")):
        out.append(("sarcoma", case.name, case / "CT_image.nii.gz", case / "CT_mask.nii.gz"))
    for case in sorted((DATA / "ibsi_sts" / "dicom").glob("STS_*")):
        out.append(("sarcoma DICOM", case.name, case, None))
    out.append(("lung crop", "ibsi_lung", DATA / "ibsi_lung" / "dicom" / "image", None))
    for case in sorted((DATA / "crlm_unlabeled").glob("CRLM-*")):
        out.append(("abdomen", case.name, case, None))
    ts = DATA / "totalseg_example"
    out += [("trunk", "totalseg dicom", ts / "example_ct_dicom", None),
            ("trunk", "totalseg nifti", ts / "example_ct.nii.gz", None)]
    for p in sorted(glob.glob(str(DATA / "openkbp" / "*" / "*" / "CT_image.nii.gz")) +
                    glob.glob(str(DATA / "openkbp" / "*" / "CT_image.nii.gz"))):
        out.append(("head-neck", Path(p).parent.name, Path(p), None))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="sts-tumour-unet")
    ap.add_argument("--predict", action="store_true",
                    help="run the model on the non-sarcoma studies (CPU: minutes)")
    ap.add_argument("--limit", type=int, default=0, help="at most this many studies per group")
    args = ap.parse_args()
    card = resolve_model(args.model)
    use = intended_use(card)
    if use is None:
        raise SystemExit(f"{card.ref} states no intended use")
    backends = None
    if args.predict:
        from medseg_gui.inference.backend import open_backends

        backends = open_backends(card, "onnxruntime", device="cpu")
    print(f"guard of {card.ref}: limits cross-section {use.max_cross_section_cm2} cm², bone "
          f"sections {use.max_bone_sections}, volume {use.max_volume_ml} mL, air margin "
          f"{use.max_air_margin}")
    print(f"{'group':14} {'study':16} {'x-sect':>7} {'bones':>5} {'mL':>7} {'air':>5} "
          f"{'load s':>6} {'guard s':>7}  reasons")
    rows: dict[str, list[tuple[float, float, float | None, float | None, bool]]] = {}
    seen: dict[str, int] = {}
    for group, name, image, ref in studies():
        if args.limit and seen.get(group, 0) >= args.limit:
            continue
        seen[group] = seen.get(group, 0) + 1
        t0 = time.perf_counter()
        volume = load_volume(image)
        t1 = time.perf_counter()
        m = measure_study(volume)
        reasons = check_study(volume, use, m)
        t2 = time.perf_counter()
        mask = None
        if ref is not None:
            mask = load_volume(ref).array > 0
        elif backends is not None and group != "sarcoma DICOM":
            from medseg_gui.inference.pipeline import segment

            mask = segment(volume, card, backends).segmentation.labelmap > 0
        ml = frac = None
        t3 = time.perf_counter()
        if mask is not None:
            ml = float(mask.sum()) * float(np.prod(volume.geometry.spacing)) / 1000.0
            frac = air_margin(volume, mask)
            reasons += check_result(volume, mask, use)
        guard_s = (t2 - t1) + (time.perf_counter() - t3)
        rows.setdefault(group, []).append((m.cross_section_cm2, m.bone_sections, ml, frac,
                                           bool(reasons)))
        print(f"{group:14} {name[:16]:16} {m.cross_section_cm2:7.0f} {m.bone_sections:5.1f} "
              f"{'' if ml is None else f'{ml:7.0f}':>7} "
              f"{'' if frac is None else f'{frac:5.2f}':>5} {t1 - t0:6.2f} {guard_s:7.2f}  "
              f"{'; '.join(reasons)[:90]}", flush=True)
    print("\nsummary: group, studies flagged, ranges (cross-section cm², bone sections, "
          "mL, air margin)")
    for group, values in rows.items():
        flagged = sum(v[4] for v in values)

        def span(i: int, values: list[tuple[float, float, float | None, float | None, bool]]
                 = values) -> str:
            xs = [v[i] for v in values if v[i] is not None]
            return f"{min(xs):.2f}-{max(xs):.2f}" if xs else "-"

        print(f"  {group:14} flagged {flagged:3d} of {len(values):3d}   x-sect {span(0)}  "
              f"bones {span(1)}  mL {span(2)}  air {span(3)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
