"""Sliding-window inference on a GPU: our pipeline against MONAI's ``sliding_window_inference``.

Workload (a), the issue's seed workload: SwinUNETR (feature size 48, 2 classes, random weights
with a fixed seed; the softmax tumour channel is the output) over a 512 x 512 x 300 CT built by
resampling a real abdominal CT (CRLM-CT-1004, 512 x 512 x 41, CC BY 4.0) along z with trilinear
interpolation; ROI 96^3, overlap 0.25, batch 8, Gaussian blending for every variant.

Baselines, in the same process on the same GPU: MONAI ``sliding_window_inference`` fp32 (input
and output on the GPU) and the same under ``torch.autocast(float16)``. Variants of ours:
``sliding_window_probability`` with the torch backend at fp32 (no air skipping: checks equality
with MONAI), fp16/bf16 autocast with channels-last-3d and SDPA ("flash") attention, air skipping
(windows whose voxels are all < -500 HU are not run), optionally ``torch.compile``.

Each variant: one warm-up run, then the median of ``--repeat`` timed runs (CUDA synchronised
around each). Reports seconds per CT, windows/s (windows actually run), effective TFLOP/s
(FlopCounterMode's count for one window x windows run / seconds), peak GPU memory, and agreement
with MONAI fp32 (max |p - p_ref|, voxel agreement and Dice of the masks at 0.5).

Seen on H200s (torch 2.11.0+cu130, 2026-11-21): MONAI fp32 3.00 s, autocast fp16 2.56 s; ours
fp16 + air skipping + ``torch.compile`` + CUDA graphs 1.38 s on one GPU (1.86x) and 0.70 s with
the windows split over two GPUs (3.69x; 1.98x scaling), with the same agreement as MONAI fp16
(``--compile --multi-gpu``; results/bench_inference_h200x2_graphs.txt). Without CUDA graphs two
GPUs were slower than one (results/bench_inference_h200x2_threads.txt). The
SDPA ("flash") attention option of MONAI's SwinUNETR is slower eagerly and WRONG under
``torch.compile`` here (fp16: NaN; bf16: body Dice 0.93), so the product does not use it; the
``--compile`` variants keep it visible.

Usage: python benchmarks/bench_inference.py [--ct .benchdata/crlm1004.npz] [--repeat 3]
       [--compile] [--json OUT.json]     (needs CUDA; ``--device cpu --small`` checks the script)
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medseg_gui.inference.network import TumourProbability  # noqa: E402
from medseg_gui.inference.sliding import Lane, sliding_window_probability  # noqa: E402
from medseg_gui.inference.torch_backend import TorchBackend  # noqa: E402


def build_ct(path: Path, shape: tuple[int, int, int], device: str) -> torch.Tensor:
    """HU volume ``shape`` (D, H, W) resampled (trilinear) from a real CT saved as npz."""
    ct = torch.from_numpy(np.load(path)["ct"].astype(np.float32))
    out = F.interpolate(ct[None, None].to(device), size=shape, mode="trilinear",
                        align_corners=True)[0, 0]
    return out.clamp_(-1024, 3071)


def swin(feature_size: int, flash: bool) -> torch.nn.Module:
    from monai.networks.nets import SwinUNETR

    return SwinUNETR(in_channels=1, out_channels=2, feature_size=feature_size,
                     use_flash_attention=flash)


def lazy(factory: Callable[[], Callable[[], Any]]) -> Callable[[], Any]:
    """A variant built on its first call (its models take GPU memory only when it runs)."""
    built: list[Callable[[], Any]] = []

    def run() -> Any:
        if not built:
            built.append(factory())
        return built[0]()
    return run


def copy_times(hu: torch.Tensor, repeat: int) -> dict[str, float]:
    """Milliseconds to move the volume to the GPU (pageable and pinned) and a float32
    probability of the same size back: what there is to overlap with compute."""
    host = hu.cpu().numpy()
    pinned = torch.from_numpy(host).pin_memory()
    on_gpu = hu.float()
    jobs = {"upload pageable": lambda: torch.from_numpy(host).to("cuda"),
            "upload pinned": lambda: pinned.to("cuda", non_blocking=True),
            "download": lambda: on_gpu.cpu()}
    out = {}
    for name, job in jobs.items():
        times = []
        for _ in range(repeat + 1):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            job()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        out[name] = 1000 * statistics.median(times[1:])
    return out


def window_flops(model: torch.nn.Module, roi: int, device: str) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 1, roi, roi, roi, device=device))
    return float(counter.get_total_flops())


def timed(fn: Callable[[], tuple[torch.Tensor, int]], repeat: int, device: str
          ) -> tuple[float, torch.Tensor, int, float]:
    """(median seconds, last output, windows run, peak GiB) after one warm-up."""
    cuda = device.startswith("cuda")
    gpus = range(torch.cuda.device_count()) if cuda else range(0)

    def sync() -> None:
        for i in gpus:
            torch.cuda.synchronize(i)

    fn()
    sync()
    for i in gpus:
        torch.cuda.reset_peak_memory_stats(i)
    times, out, n = [], torch.empty(0), 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        out, n = fn()
        sync()
        times.append(time.perf_counter() - t0)
    peak = max((torch.cuda.max_memory_allocated(i) / 2**30 for i in gpus), default=0.0)
    return statistics.median(times), out, n, peak


def agreement(p: torch.Tensor, ref: torch.Tensor, body: torch.Tensor) -> dict[str, float]:
    """Max |dp| in the body, mask agreement everywhere and in the body, Dice in the body.

    Skipped air windows get p = 0 by design; a random-weight model puts arbitrary values there,
    so the body (HU >= -500) is where skipping must not change the answer.
    """
    a, b = p >= 0.5, ref >= 0.5
    ab, bb = a & body, b & body
    denom = ab.sum().item() + bb.sum().item()
    return {"max_abs_diff_body": float((p - ref).abs()[body].max()),
            "voxel_agreement": float((a == b).double().mean()),
            "voxel_agreement_body": float((a == b)[body].double().mean()),
            "dice_body": 2 * (ab & bb).sum().item() / denom if denom else 1.0}


def workload_b(cases: list[str], data: Path, threads: int) -> None:
    """(b): the product's model on shared STS cases, on the CPU: ours vs MONAI on CPU."""
    from monai.inferers import sliding_window_inference

    from medseg_gui.inference.backend import open_backend
    from medseg_gui.inference.models import resolve_model
    from medseg_gui.inference.pipeline import prepare, segment
    from medseg_gui.io.imagefile import read_image

    torch.set_num_threads(threads)
    card = resolve_model()
    torch_be = TorchBackend(card)
    ort_be = open_backend(card, "onnxruntime", device="cpu")
    print(f"workload (b): {card.ref} on CPU ({threads} threads), ROI {card.roi_size}, "
          f"overlap {card.overlap}; seconds include resampling both ways")
    print(f"{'case':8} {'MONAI swi':>9} {'ours torch':>10} {'ours ORT':>9} {'Dice GT':>8} "
          f"{'agree':>8}")
    for case in cases:
        vol = read_image(data / case / "CT_image.nii.gz")
        gt = read_image(data / case / "CT_mask.nii.gz").array > 0
        t0 = time.perf_counter()
        _, image = prepare(vol, card)
        with torch.inference_mode():
            ref = sliding_window_inference(torch.from_numpy(image)[None, None], card.roi_size, 8,
                                           torch_be.module, overlap=card.overlap,
                                           mode=card.blend)
        t_monai = time.perf_counter() - t0  # (no resampling back: MONAI's part only)
        r_torch = segment(vol, card, torch_be)
        r_ort = segment(vol, card, ort_be)
        a = r_ort.segmentation.labelmap > 0
        dice = 2 * (a & gt).sum() / max(a.sum() + gt.sum(), 1)
        same = float((a == (r_torch.segmentation.labelmap > 0)).mean())
        print(f"{case:8} {t_monai:9.2f} {r_torch.seconds:10.2f} {r_ort.seconds:9.2f} "
              f"{dice:8.4f} {same:8.5f}  ({r_ort.windows} windows, {r_ort.skipped} air; "
              f"ref {tuple(ref.shape[2:])})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ct", type=Path, default=ROOT / ".benchdata" / "crlm1004.npz")
    ap.add_argument("--shape", type=int, nargs=3, default=[300, 512, 512])
    ap.add_argument("--roi", type=int, default=96)
    ap.add_argument("--overlap", type=float, default=0.25)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--feature-size", type=int, default=48)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--compile", action="store_true", help="add a torch.compile variant")
    ap.add_argument("--multi-gpu", action="store_true",
                    help="add variants that split the windows over 2..N visible GPUs")
    ap.add_argument("--copies", action="store_true",
                    help="also time the host<->GPU copies of the volume and the probability")
    ap.add_argument("--only", help="variant names separated by ; to run (plus the baselines)")
    ap.add_argument("--small", action="store_true", help="tiny sizes to check the script")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--workload-b", nargs="*", metavar="CASE",
                    help="run (b) on these STS cases on the CPU instead of (a)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ibsi_sts"
                    / "nifti")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.workload_b is not None:
        workload_b(args.workload_b or ["STS_018", "STS_032", "STS_041", "STS_051"], args.data,
                   args.threads)
        return
    if args.small:
        args.shape, args.roi, args.feature_size, args.repeat = [70, 100, 100], 64, 12, 1
    dev = args.device
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    hu = build_ct(args.ct, tuple(args.shape), dev)
    image = ((hu.clamp(-1000, 1000)) / 1000).contiguous()  # the card's default normalisation
    body = hu >= -500
    roi = (args.roi,) * 3
    base = swin(args.feature_size, flash=False)
    fast = swin(args.feature_size, flash=True)
    fast.load_state_dict(base.state_dict())
    ref_model = TumourProbability(base).eval().to(dev)
    flops = window_flops(ref_model, args.roi, dev)

    def monai(dtype: torch.dtype | None) -> Callable[[], tuple[torch.Tensor, int]]:
        from monai.inferers import sliding_window_inference

        def run() -> tuple[torch.Tensor, int]:
            amp = torch.autocast(dev.split(":")[0], dtype=dtype or torch.float32,
                                 enabled=dtype is not None)
            with torch.inference_mode(), amp:
                out = sliding_window_inference(image[None, None], roi, args.batch, ref_model,
                                               overlap=args.overlap, mode="gaussian")
            return out[0, 0].float(), -1
        return run

    def ours(backend: TorchBackend | list[TorchBackend], skip: bool
             ) -> Callable[[], tuple[torch.Tensor, int]]:
        # A list: one backend per GPU, the windows split over them (lane 0 is the input's GPU)
        predict = (backend.run if isinstance(backend, TorchBackend)
                   else [Lane(torch.device(b.device), b.run) for b in backend])

        def run() -> tuple[torch.Tensor, int]:
            p, stats = sliding_window_probability(
                image, predict, roi, overlap=args.overlap, batch_size=args.batch,
                body=body if skip else None)
            return p, stats.windows - stats.skipped
        return run

    fast_module = TumourProbability(fast)

    def per_gpu(precision: str, module: torch.nn.Module, skip: bool, gpus: int,
                compile: bool = False, graphs: bool = False
                ) -> Callable[[], tuple[torch.Tensor, int]]:
        group = [TorchBackend(None, device=f"cuda:{i}", precision=precision,
                              module=copy.deepcopy(module), compile=compile, graphs=graphs)
                 for i in range(gpus)]
        for b in group:  # compile (or warm up) each GPU's copy here, not inside the lanes
            b.run(torch.zeros(args.batch, 1, *roi, device=b.device))
        return ours(group, skip)

    def torch_variant(precision: str, module: torch.nn.Module, skip: bool, cl: bool = True,
                      compile: bool | str = False, graphs: bool = False
                      ) -> Callable[[], tuple[torch.Tensor, int]]:
        if compile:  # a copy per compiled variant: no shared graph caches between modes
            module = copy.deepcopy(module)
        return ours(TorchBackend(None, device=dev, precision=precision, module=module,
                                 channels_last=cl, compile=compile, graphs=graphs), skip)

    variants: list[tuple[str, Callable[[], tuple[torch.Tensor, int]]]] = [
        ("MONAI swi fp32 (baseline)", monai(None)),
        ("MONAI swi autocast fp16", monai(torch.float16)),
        ("ours torch fp32, no skip", ours(TorchBackend(None, device=dev, module=ref_model), False)),
        ("ours fp16, no skip", torch_variant("fp16", ref_model, False, cl=False)),
        ("ours fp16 sdpa, no skip", torch_variant("fp16", fast_module, False, cl=False)),
        ("ours fp16 cl3d+sdpa, no skip", torch_variant("fp16", fast_module, False)),
        ("ours fp16, skip air", torch_variant("fp16", ref_model, True, cl=False)),
        ("ours fp16 sdpa, skip air", torch_variant("fp16", fast_module, True, cl=False)),
        ("ours bf16 sdpa, skip air", torch_variant("bf16", fast_module, True, cl=False)),
        ("ours fp16 graphs, skip air", torch_variant("fp16", ref_model, True, cl=False,
                                                     graphs=True)),
    ]
    if args.compile:  # each compiles its own graph (tens of seconds, outside the timing)
        variants += [
            ("ours bf16 sdpa compiled, skip", torch_variant("bf16", fast_module, True, False,
                                                            True)),
            ("ours fp16 sdpa compiled, skip", torch_variant("fp16", fast_module, True, False,
                                                            True)),
            ("ours bf16 sdpa reduce-overhead, skip", torch_variant(
                "bf16", fast_module, True, False, "reduce-overhead")),
            ("ours fp32 compiled, skip", torch_variant("fp32", ref_model, True, False, True)),
            ("ours fp16 compiled, skip", torch_variant("fp16", ref_model, True, False, True)),
            ("ours bf16 compiled, skip", torch_variant("bf16", ref_model, True, False, True)),
            ("ours fp16 compiled+graphs, skip", torch_variant("fp16", ref_model, True, False,
                                                              True, graphs=True)),
        ]
    gpus = torch.cuda.device_count() if dev.startswith("cuda") else 0
    for n in range(2, gpus + 1) if args.multi_gpu else ():
        variants += [(f"ours fp16, skip air, {n} GPUs",
                      lazy(lambda n=n: per_gpu("fp16", ref_model, True, n))),
                     (f"ours fp16 graphs, skip air, {n} GPUs",
                      lazy(lambda n=n: per_gpu("fp16", ref_model, True, n, graphs=True)))]
        if args.compile:
            variants += [(f"ours fp16 compiled, skip, {n} GPUs",
                          lazy(lambda n=n: per_gpu("fp16", ref_model, True, n, True))),
                         (f"ours fp16 compiled+graphs, skip, {n} GPUs",
                          lazy(lambda n=n: per_gpu("fp16", ref_model, True, n, True, True)))]
    if args.only:  # the two MONAI baselines always run: they are the table's reference
        keep = [w.strip() for w in args.only.split(";")]
        variants = [v for v in variants
                    if v[0].startswith("MONAI") or any(w == v[0] for w in keep)]
    from medseg_gui.inference.sliding import window_starts

    total_windows = len(window_starts(tuple(args.shape), roi, args.overlap))
    rows: list[dict[str, Any]] = []
    ref: torch.Tensor | None = None
    for name, fn in variants:
        try:
            sec, out, n, peak = timed(fn, args.repeat, dev)
        except Exception as exc:  # one failing variant (e.g. compile) must not lose the table
            print(f"{name}: FAILED {type(exc).__name__}: {str(exc)[:200]}", flush=True)
            continue
        n = total_windows if n < 0 else n
        if ref is None:
            ref = out.clone()
        rows.append({"variant": name, "seconds": sec, "windows": n, "windows_per_s": n / sec,
                     "tflops": flops * n / sec / 1e12, "peak_gib": peak,
                     "nan": bool(out.isnan().any()), **agreement(out, ref, body)})
        print(f"done: {rows[-1]}", flush=True)
        if args.json:  # after every row: a later variant that hangs must not lose these
            args.json.write_text(json.dumps({"device": str(dev), "rows": rows}, indent=2))
    base_fp16 = next((r["seconds"] for r in rows if "MONAI swi autocast" in r["variant"]), None)
    gpu = torch.cuda.get_device_name() if dev.startswith("cuda") else "cpu"
    print(f"\nworkload (a): SwinUNETR fs{args.feature_size}, CT {args.shape} (D,H,W) from "
          f"{args.ct.name}, ROI {args.roi}^3, overlap {args.overlap}, batch {args.batch}, "
          f"{total_windows} windows, {flops / 1e9:.0f} GFLOP/window; device {gpu}; "
          f"torch {torch.__version__}")
    head = (f"{'variant':32} {'s/CT':>7} {'x fp16':>7} {'win':>4} {'win/s':>7} {'TFLOP/s':>8} "
            f"{'GiB':>6} {'max|dp|b':>9} {'agree':>8} {'agree b':>8} {'Dice b':>7}")
    print(head)
    for r in rows:
        speed = base_fp16 / r["seconds"] if base_fp16 else float("nan")
        print(f"{r['variant']:32} {r['seconds']:7.3f} {speed:7.2f} {r['windows']:4d} "
              f"{r['windows_per_s']:7.1f} {r['tflops']:8.1f} {r['peak_gib']:6.2f} "
              f"{r['max_abs_diff_body']:9.2e} {r['voxel_agreement']:8.5f} "
              f"{r['voxel_agreement_body']:8.5f} {r['dice_body']:7.4f}")
    print("b = body voxels (HU >= -500); x fp16 = MONAI autocast fp16 seconds / these seconds")
    if args.copies and dev.startswith("cuda"):
        copies = copy_times(hu, max(args.repeat, 3))
        mb = hu.numel() * 4 / 1e6
        print(f"copies of the {mb:.0f} MB float32 volume (ms): "
              + ", ".join(f"{k} {v:.1f}" for k, v in copies.items()))
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "device": gpu, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
