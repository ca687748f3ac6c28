"""Window/level presets, read from ``resources/presets/window_level.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg_gui.resources import RESOURCES

PRESETS_FILE = RESOURCES / "presets" / "window_level.json"


@dataclass(frozen=True)
class WindowLevel:
    """A named display window: ``width`` and ``level`` (centre), in the image's units."""

    name: str
    width: float
    level: float

    @property
    def low(self) -> float:
        return self.level - self.width / 2

    @property
    def high(self) -> float:
        return self.level + self.width / 2


def load_presets(path: str | Path = PRESETS_FILE) -> list[WindowLevel]:
    """The presets in a JSON file ``{"presets": [{"name", "width", "level"}, ...]}``."""
    data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    out = []
    for p in data["presets"]:
        width = float(p["width"])
        if width <= 0:
            raise ValueError(f"{path}: preset {p['name']!r} has a non-positive width")
        out.append(WindowLevel(str(p["name"]), width, float(p["level"])))
    return out


def auto_window(array: npt.NDArray[Any], modality: str = "") -> WindowLevel:
    """A sensible first window: soft tissue for CT, the 1st-99th percentile otherwise.

    Files without a modality (NIfTI, NRRD) count as CT when they hold integer values from air
    (about -1000) upwards, as Hounsfield units do.
    """
    sample = np.asarray(array).reshape(-1)[:: max(1, array.size // 200_000)]
    looks_ct = (not modality and sample.size > 0 and bool(np.all(np.mod(sample, 1) == 0))
                and -1100 <= float(np.min(array)) <= -900)
    if modality.upper() == "CT" or looks_ct:
        return WindowLevel("Soft tissue", 400.0, 40.0)
    lo, hi = (float(v) for v in np.percentile(sample, [1.0, 99.0]))
    if hi <= lo:
        hi = lo + 1.0
    return WindowLevel("Auto", hi - lo, (hi + lo) / 2)


def histogram_window(array: npt.NDArray[Any], low_pct: float = 2.0,
                     high_pct: float = 98.0) -> WindowLevel:
    """A window spanning the ``low_pct``..``high_pct`` percentiles of the image's histogram.

    Unlike :func:`auto_window` this looks at the data for CT too. Padding (the minimum value,
    often -1024 or -2000 outside the scan circle) and, for HU-like data, air below -900 are left
    out so the window covers the patient rather than the background.
    """
    sample = np.asarray(array).reshape(-1)[:: max(1, array.size // 500_000)].astype(np.float64)
    if sample.size == 0:
        return WindowLevel("Auto (histogram)", 1.0, 0.0)
    sample = sample[sample > sample.min()] if np.ptp(sample) > 0 else sample
    if sample.size and float(np.min(array)) <= -900:
        body = sample[sample > -900]
        sample = body if body.size > 100 else sample
    if sample.size == 0:
        return WindowLevel("Auto (histogram)", 1.0, float(np.min(array)))
    lo, hi = (float(v) for v in np.percentile(sample, [low_pct, high_pct]))
    if hi <= lo:
        hi = lo + 1.0
    return WindowLevel("Auto (histogram)", hi - lo, (hi + lo) / 2)
