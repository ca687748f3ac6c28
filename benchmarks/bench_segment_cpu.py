"""``medseg segment`` on full-size 512 x 512 CTs on the CPU: with the intended-use guard (what
the command does now) against the whole automatic pass it ran before (``--force``, the baseline),
in the same run.

Each study runs as the real command in a subprocess (``python -m medseg_gui.cli segment``, ONNX
Runtime, ``--threads`` CPU threads through ``OMP_NUM_THREADS``), so the times include start-up,
loading and writing, as a user sees them. A study outside the model's intended use now ends after
loading and the guard's check (exit 3, nothing written); the baseline runs the model anyway.

Run: ``python benchmarks/bench_segment_cpu.py [--threads 2] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(os.environ.get("MEDSEG_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared"
                           / "data"))
STUDIES = {
    "CRLM-CT-1004 (abdomen, 512x512x41)": DATA / "crlm_unlabeled" / "CRLM-CT-1004",
    "CRLM-CT-1006 (abdomen, 512x512x51)": DATA / "crlm_unlabeled" / "CRLM-CT-1006",
    "TotalSegmentator (trunk, 512x512x20)": DATA / "totalseg_example" / "example_ct_dicom",
    "STS_008 DICOM (limb crop, in use)": DATA / "ibsi_sts" / "dicom" / "STS_008",
}


def run(study: Path, out: Path, force: bool, threads: int) -> tuple[float, int, str]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "medseg_gui.cli", "segment", str(study), "-o", str(out),
           "--device", "cpu", "--backend", "onnxruntime"] + (["--force"] if force else [])
    if out.exists():
        out.unlink()
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    line = (p.stdout.strip() or p.stderr.strip()).splitlines()[-1:] or [""]
    return time.perf_counter() - t0, p.returncode, line[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"medseg segment, ONNX Runtime on {args.threads} CPU threads, median of "
          f"{args.repeat}; baseline: the whole pass (--force)")
    print(f"{'study':38} {'now s':>7} {'exit':>4} {'baseline s':>10} {'ratio':>6}  now says")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "mask.nii.gz"
        for name, study in STUDIES.items():
            if not study.exists():
                continue
            now, base = [], []
            for _ in range(args.repeat):  # interleaved, so a cold file cache hits both
                now.append(run(study, out, False, args.threads))
                base.append(run(study, out, True, args.threads))
            t_now = statistics.median(r[0] for r in now)
            t_base = statistics.median(r[0] for r in base)
            print(f"{name:38} {t_now:7.1f} {now[-1][1]:4d} {t_base:10.1f} "
                  f"{t_now / t_base:6.2f}  {now[-1][2][:110]}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
