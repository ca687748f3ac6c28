"""Two recipes side by side from ``eval_interactive.py --json`` files: mean +- sd over seeds.

    python benchmarks/compare_interactive.py --a NAME FILE.json[#MODEL] [...] \\
        --b NAME FILE.json[#MODEL] [...] [--sets sarcoma lung ...] [--metrics dice@1 dice@3]

Every model in a recipe's files (its seeds; ``#MODEL`` picks one model of a file that holds
several) contributes one value per set; a recipe's row is
the mean +- sd over them, and ``b - a`` is the difference of the means. The issue-21 with/without
tables are printed this way from the stored results (``benchmarks/results/``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def per_seed(files: list[str], metric: str) -> dict[str, list[float]]:
    """``set -> [value of each model in files]``."""
    out: dict[str, list[float]] = {}
    for item in files:
        f, _, only = item.partition("#")
        models = json.loads(Path(f).read_text(encoding="utf-8"))
        for key, sets in models.items():
            if only and key != only:
                continue
            for name, result in sets.items():
                value = result["summary"].get(metric)
                if value is not None:
                    out.setdefault(name, []).append(float(value))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", nargs="+", required=True, metavar="NAME FILE", help="recipe A")
    p.add_argument("--b", nargs="+", required=True, metavar="NAME FILE", help="recipe B")
    p.add_argument("--sets", nargs="+", help="sets to show (default: those in both)")
    p.add_argument("--metrics", nargs="+", default=["dice@1", "dice@3", "dice@5"])
    args = p.parse_args()
    (name_a, *files_a), (name_b, *files_b) = args.a, args.b
    print(f"A = {name_a}: {' '.join(files_a)}\nB = {name_b}: {' '.join(files_b)}")
    print(f"{'set':<18}{'metric':<9}{'A mean +- sd (n)':>22}{'B mean +- sd (n)':>22}{'B - A':>9}")
    for metric in args.metrics:
        a, b = per_seed(files_a, metric), per_seed(files_b, metric)
        for name in args.sets or [s for s in a if s in b]:
            if name not in a or name not in b:
                continue
            cells = []
            for values in (a[name], b[name]):
                v = np.asarray(values)
                sd = f"{v.std(ddof=1):.3f}" if len(v) > 1 else "  -  "
                cells.append(f"{v.mean():.3f} +- {sd} ({len(v)})")
            diff = np.mean(b[name]) - np.mean(a[name])
            print(f"{name:<18}{metric:<9}{cells[0]:>22}{cells[1]:>22}{diff:>+9.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
