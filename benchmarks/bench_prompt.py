"""Seconds from one prompt to the mask on the study grid, against the automatic model's pass.

On the bundled demo study (STS_008, 141 x 137 x 51) and on a 512 x 512 x 300 volume made from
real CT (the demo study tiled), the promptable model (``--model``) turns prompts into a mask with
:func:`medseg_gui.inference.interactive.predict`: a click at the tumour's centre, a 3D box
around it, and a negative click after the first (the second prompt of a session, with the first
mask as prior). Each is timed ``--repeat`` times after a warm-up; the median is printed, with
the number of AutoZoom passes. The baseline, timed the same way in this process, is what the
product did before prompts: the automatic model's whole-study sliding-window pass
(``--baseline``, default ``sts-tumour-unet``).

Backends: ONNX Runtime on the CPU with ``--threads`` threads; on a CUDA machine also PyTorch
(fp32 and fp16 autocast). Usage::

    python benchmarks/bench_prompt.py --model engines/prompt-unet/1.0.0 [--threads 2]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg_gui.core.volume import Volume
from medseg_gui.inference.backend import open_backend
from medseg_gui.inference.interactive import predict
from medseg_gui.inference.model_card import load_card
from medseg_gui.inference.models import resolve_model
from medseg_gui.inference.pipeline import segment
from medseg_gui.inference.prompts import box, point

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "resources" / "demo" / "STS_008"


def demo_study(npz: str | None) -> tuple[Volume, np.ndarray]:
    """The demo CT and its reference tumour mask; from ``npz`` (``image``, ``mask``, ``spacing``,
    ``origin``, ``direction``; made by ``--save-npz``) on a machine without the DICOM and
    NIfTI readers (a GPU node)."""
    from medseg_gui.core.geometry import Geometry

    if npz:
        with np.load(npz) as z:
            g = Geometry(z["image"].shape, tuple(z["spacing"]), tuple(z["origin"]),
                         tuple(z["direction"]))
            return Volume(z["image"], g), z["mask"].astype(bool)
    from medseg_gui.io.loader import load_volume
    from medseg_gui.io.masks import load_mask

    vol = load_volume(DEMO / "dicom" / "image")
    return vol, load_mask(DEMO / "gtv_mask.nii.gz", vol).labelmap > 0


def tiled(vol: Volume, shape: tuple[int, int, int] = (300, 512, 512)) -> Volume:
    """A large volume of real CT: the demo study mirrored and tiled up to ``shape``."""
    from medseg_gui.core.geometry import Geometry

    a = vol.array
    reps = [int(np.ceil(s / n)) for s, n in zip(shape, a.shape, strict=True)]
    big = np.pad(a, [(0, (r - 1) * n) for r, n in zip(reps, a.shape, strict=True)],
                 mode="symmetric")[: shape[0], : shape[1], : shape[2]]
    g = vol.geometry
    return Volume(np.ascontiguousarray(big), Geometry(shape, g.spacing, g.origin, g.direction))


def median_ms(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    fn()  # warm-up: sessions, kernels, caches
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="")
    ap.add_argument("--baseline", default="sts-tumour-unet")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--study", help="the demo study as .npz (see demo_study)")
    ap.add_argument("--save-npz", help="write the demo study as .npz and stop")
    ap.add_argument("--gpu-only", action="store_true", help="time only the CUDA backends")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    vol, ref = demo_study(args.study)
    if args.save_npz:
        g = vol.geometry
        np.savez_compressed(args.save_npz, image=vol.array, mask=ref, spacing=g.spacing,
                            origin=g.origin, direction=g.direction)
        return
    card = load_card(args.model)
    kji = np.argwhere(ref).mean(axis=0)
    centre = vol.geometry.index_to_world(kji[::-1])
    lo = vol.geometry.index_to_world(np.argwhere(ref).min(axis=0)[::-1])
    hi = vol.geometry.index_to_world(np.argwhere(ref).max(axis=0)[::-1])
    big = tiled(vol)
    backends: list[tuple[str, Any]] = []
    if not args.gpu_only:
        backends.append(("onnxruntime cpu", lambda: _ort(card, args.threads)))
    if torch.cuda.is_available():
        backends.append(("torch cuda fp32", lambda: open_backend(card, "torch", device="cuda:0",
                                                                 precision="fp32")))
        backends.append(("torch cuda fp16", lambda: open_backend(card, "torch", device="cuda:0",
                                                                 precision="fp16")))
    rows = []
    for name, make in backends:
        be = make()
        for study_name, study in (("demo 141x137x51", vol), ("512x512x300", big)):
            click = point(centre)
            ms, first = median_ms(lambda s=study, c=click, b=be: predict(s, card, b, c),
                                  args.repeat)
            rows.append((name, study_name, "click", ms, len(first.passes)))
            prior = first.full_mask(study.shape)
            second = click.add(point(centre + np.array([0.0, 0.0, 6.0]), negative=True))
            ms, r = median_ms(lambda s=study, p=second, m=prior, b=be: predict(
                s, card, b, p, prior=m), args.repeat)
            rows.append((name, study_name, "2nd prompt (prior)", ms, len(r.passes)))
            ms, r = median_ms(lambda s=study, b=be: predict(s, card, b, box(lo, hi)),
                              args.repeat)
            rows.append((name, study_name, "3D box", ms, len(r.passes)))
        be.close()
    base = resolve_model(args.baseline)
    devs = [] if args.gpu_only else [("onnxruntime cpu", "cpu")]
    devs += [("torch cuda fp16", "cuda:0")] if torch.cuda.is_available() else []
    # the studies on the baseline's own grid, so that its pass needs no SimpleITK resampling
    on_grid = [(n, _on_grid(s, base)) for n, s in (("demo 141x137x51", vol), ("512x512x300", big))]
    for name, dev in devs:
        be = _ort(base, args.threads) if dev == "cpu" else open_backend(base, "torch",
                                                                       device=dev)
        for study_name, study in on_grid:
            ms, _ = median_ms(lambda s=study, b=be: segment(s, base, b), max(args.repeat // 3, 1))
            rows.append((f"baseline {base.ref} {name}", study_name, "whole-study pass", ms, 0))
        be.close()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    print(f"\n{card.ref} on {platform.processor() or platform.machine()} "
          f"({args.threads} CPU threads), {gpu}; median of {args.repeat} after a warm-up")
    print(f"{'backend':34} {'study':16} {'prompt':20} {'ms':>8} {'passes':>6}")
    for name, study_name, what, ms, passes in rows:
        print(f"{name:34} {study_name:16} {what:20} {ms:8.1f} {passes:6d}")


def _on_grid(vol: Volume, card: Any) -> Volume:
    from medseg_gui.core.resample import resample_array
    from medseg_gui.inference.pipeline import model_geometry

    grid = model_geometry(vol.geometry, card)
    if grid is vol.geometry:
        return vol
    return Volume(resample_array(vol.array, vol.geometry, grid), grid)


def _ort(card: Any, threads: int) -> Any:
    from medseg_gui.inference.onnx_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(card, device="cpu", threads=threads)


if __name__ == "__main__":
    main()
