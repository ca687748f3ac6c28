"""Every case of the bad-input corpus through the real ``medseg`` commands, as one table.

For each (case, command): the exit code, whether a traceback was printed, the peak memory of the
command's process, and the line the user reads (``medseg: error: PATH: `` and the temporary
folder cut off). The baseline rows run the same commands on the undamaged files in the same run,
so the peak-memory column shows whether a header that claims gigabytes made a process take them.
The corpus is ``tests/bad_input_corpus.py``; ``tests/test_bad_input.py`` asserts on the same cases.

Run: ``python benchmarks/bad_input_table.py [--data ../shared/data]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medseg_gui.io.export_commands import FORMATS  # noqa: E402
from tests.bad_input_corpus import (  # noqa: E402
    MASK_AS_STUDY,
    MASK_CASES,
    STS,
    STUDY_CASES,
    WARNED_STUDIES,
    Maker,
    study_for_mask,
)

STUDY_COMMANDS = ("info", "convert", "segment", "queue add")


def run(args: list[str | Path], home: Path) -> tuple[int, str, float, float]:
    """Exit code, stderr, peak resident memory (MiB) and seconds of one ``medseg`` process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MEDSEG_HOME": str(home)}
    env.pop("MEDSEG_DEBUG", None)
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "medseg_gui.cli", *map(str, args)],
                                stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    return proc.returncode, text, usage.ru_maxrss / 1024, seconds


def command_args(command: str, study: Path, out: Path, mask: Path) -> list[str | Path]:
    if command in FORMATS:
        return ["export", study, "--mask", mask, "--format", command, "-o", out]
    table: dict[str, list[str | Path]] = {
        "info": ["info", study], "convert": ["convert", study, out],
        "segment": ["segment", study, "-o", out],
        # --any-status: the reference masks carry no review status (only completed segments
        # are queued otherwise), so the baseline row queues the undamaged case for real
        "queue add": ["queue", "add", study, "--mask", mask, "--any-status"]}
    return table[command]


def said(stderr: str, tmp: Path) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    text = " | ".join(lines[:2]) + (f" (+{len(lines) - 2} lines)" if len(lines) > 2 else "")
    return text.replace("medseg: error: ", "").replace(str(tmp) + "/", "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    data = args.data.resolve()
    good_study = data.joinpath(*STS, "CT_image.nii.gz")
    good_mask = data.joinpath(*STS, "CT_mask.nii.gz")
    rows: list[tuple[str, str, int, bool, float, float, str]] = []

    def case_rows(group: str, case: str, make: Maker | None, commands: tuple[str, ...],
                  mask_case: bool = False) -> None:
        for command in commands:
            with tempfile.TemporaryDirectory() as name:
                tmp = Path(name)
                bad = make(data, tmp) if make is not None else None
                study = (study_for_mask(data, case) if mask_case else bad) or good_study
                mask = (bad if mask_case else None) or good_mask
                out = tmp / "out" / "result.nii.gz"
                code, err, mib, sec = run(command_args(command, study, out, mask), tmp / "home")
                rows.append((f"{group}: {case}", command, code, "Traceback" in err, mib, sec,
                             said(err, tmp)))
                print(f"{rows[-1][0]:<46} {command:<10} exit {code}", file=sys.stderr)

    case_rows("baseline", "undamaged STS_001", None, (*STUDY_COMMANDS, "nifti"))
    for case, (make, _) in sorted(STUDY_CASES.items()):
        case_rows("study", case, make, STUDY_COMMANDS)
    for case, (make, _) in sorted(WARNED_STUDIES.items()):
        case_rows("usable study", case, make, ("info", "convert"))
    for case, (make, _) in sorted(MASK_CASES.items()):
        case_rows("mask", case, make, (*FORMATS, "queue add"), mask_case=True)
    for case, make in sorted(MASK_AS_STUDY.items()):
        case_rows("mask as study", case, make, ("info", "convert", "segment"))

    base = {cmd: mib for case, cmd, _, _, mib, _, _ in rows if case.startswith("baseline")}
    print("| case | command | exit | traceback | peak MiB | x baseline | s | message |")
    print("|---|---|---|---|---|---|---|---|")
    for case, cmd, code, tb, mib, sec, text in rows:
        ref = base.get(cmd) or base["nifti" if cmd in FORMATS else "info"]
        ratio = f"{mib / ref:.2f}"
        print(f"| {case} | {cmd} | {code} | {'YES' if tb else 'no'} | {mib:.0f} | {ratio} | "
              f"{sec:.1f} | {text.replace('|', '/')} |")
    tracebacks = sum(r[3] for r in rows)
    header = [r for r in rows if "huge" in r[0] or "beyond" in r[0]]
    worst = max(header, key=lambda r: r[4])
    print(f"\n{len(rows)} runs, {tracebacks} traceback(s); exit codes "
          f"{sorted({r[2] for r in rows})}. Worst header-driven case: {worst[0]} / {worst[1]}, "
          f"peak {worst[4]:.0f} MiB; on the undamaged study the same command took "
          f"{base.get(worst[1], base['info']):.0f} MiB and info {base['info']:.0f} MiB.")
    return 1 if tracebacks else 0


if __name__ == "__main__":
    sys.exit(main())
