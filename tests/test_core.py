"""Geometry, Volume and Segmentation keep world positions through every operation."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest

from medseg_gui.core import Geometry, Segment, Segmentation, SegmentSource, Volume
from medseg_gui.core.paths import cache_dir, data_dir
from medseg_gui.core.progress import Cancelled, TerminalProgress, check, scaled
from medseg_gui.io.imagefile import read_image
from medseg_gui.resources import DEMO_MASK

OBLIQUE = Geometry(
    shape=(7, 9, 11),
    spacing=(0.7, 0.9, 3.0),
    origin=(-12.5, 40.0, 101.0),
    # A rotation about z by 30 degrees, then k reversed (a feet-first series).
    direction=tuple(
        (np.array([[np.cos(0.5), -np.sin(0.5), 0], [np.sin(0.5), np.cos(0.5), 0], [0, 0, 1]])
         @ np.diag([1, 1, -1])).ravel()
    ),
)


def test_index_world_round_trip() -> None:
    rng = np.random.default_rng(0)
    ijk = rng.uniform(-2, 12, size=(50, 3))
    back = OBLIQUE.world_to_index(OBLIQUE.index_to_world(ijk))
    np.testing.assert_allclose(back, ijk, atol=1e-9)
    # Voxel (1, 0, 0) is one column spacing along the first direction column.
    step = OBLIQUE.index_to_world([1, 0, 0]) - OBLIQUE.index_to_world([0, 0, 0])
    np.testing.assert_allclose(step, 0.7 * OBLIQUE.direction_matrix[:, 0])
    assert OBLIQUE.orientation_code()[2] == "I"


def test_crop_keeps_world_positions() -> None:
    arr = np.arange(np.prod(OBLIQUE.shape), dtype=np.int16).reshape(OBLIQUE.shape)
    vol = Volume(arr, OBLIQUE)
    sub = vol.crop((2, 3, 1), (9, 8, 6))
    assert sub.shape == (5, 5, 7)
    # The voxel (0,0,0) of the crop is voxel (2,3,1) of the original, at the same world point.
    np.testing.assert_allclose(sub.index_to_world([0, 0, 0]), vol.index_to_world([2, 3, 1]))
    assert sub.array[0, 0, 0] == arr[1, 3, 2]
    assert sub.copy().geometry == sub.geometry
    with pytest.raises(ValueError):
        vol.crop((0, 0, 0), (12, 9, 7))


def test_resample_keeps_world_positions() -> None:
    # A bright voxel's world position survives resampling to another spacing.
    vol = read_image(DEMO_MASK)
    target = vol.geometry.with_spacing((1.5, 1.5, 1.5))
    resampled = vol.resample(target, interpolation="nearest")
    assert resampled.geometry == target
    assert resampled.array.dtype == vol.array.dtype
    centroid = np.argwhere(vol.array > 0).mean(axis=0)[::-1]  # (i, j, k)
    centroid2 = np.argwhere(resampled.array > 0).mean(axis=0)[::-1]
    np.testing.assert_allclose(
        vol.index_to_world(centroid), resampled.index_to_world(centroid2), atol=1.0
    )
    # The tumour volume is kept within a few percent.
    v1 = (vol.array > 0).sum() * np.prod(vol.spacing)
    v2 = (resampled.array > 0).sum() * np.prod(target.spacing)
    assert abs(v2 - v1) / v1 < 0.05


def test_segmentation_table_and_volumes() -> None:
    geom = Geometry(shape=(4, 5, 6), spacing=(2.0, 2.0, 2.5))
    seg = Segmentation.empty(geom, [Segment(1, "Tumour", source=SegmentSource.AUTOMATIC,
                                            model="sts-unet:1.0.0")])
    seg.labelmap[1:3, 1:3, 1:3] = 1
    assert seg.volumes_ml() == {1: pytest.approx(8 * 10.0 / 1000)}
    assert seg.validate() == []
    seg.labelmap[0, 0, 0] = 7
    assert "no segment" in seg.validate()[0]
    row = seg.segments[0]
    assert Segment.from_dict(row.to_dict()) == row
    assert row.type.meaning == "Neoplasm"
    with pytest.raises(ValueError):
        Segmentation(np.zeros((4, 5, 6), np.float32), geom)  # type: ignore[arg-type]


def test_geometry_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Geometry(shape=(1, 2, 3), spacing=(1, 0, 1))
    with pytest.raises(ValueError):
        Geometry(shape=(1, 2, 3), direction=(1, 0, 0, 1, 0, 0, 0, 0, 1))


def test_progress_protocol() -> None:
    seen: list[float] = []

    def cb(f: float, m: str) -> bool:
        seen.append(f)
        return f < 0.9

    sub = scaled(cb, 0.5, 1.0)
    check(sub, 0.5, "half")
    assert seen == [0.75]
    with pytest.raises(Cancelled):
        check(sub, 1.0, "end")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_progress() -> None:
    log = io.StringIO()
    printer = TerminalProgress(log, log=True)
    assert printer(0.25, "step 1") and printer(2.0, "step 2")
    lines = log.getvalue().splitlines()
    assert [ln.split("] ")[1] for ln in lines] == ["step 1", "step 2"]
    assert lines[0].startswith("[ 25.0%") and lines[1].startswith("[100.0%")

    pipe = io.StringIO()
    assert TerminalProgress(pipe)(0.5, "windows")  # not a terminal, not a log: silent
    assert pipe.getvalue() == ""

    tty = _Terminal()
    in_place = TerminalProgress(tty)
    in_place(0.1, "a long first message")
    time.sleep(0.15)  # tqdm redraws at most every 0.1 s
    in_place(0.2, "short")
    drawn = tty.getvalue().split("\r")
    assert drawn[1].startswith("[ 10.0%") and drawn[1].endswith("] a long first message")
    assert drawn[2].startswith("[ 20.0%") and drawn[2].rstrip().endswith("] short")
    assert len(drawn[2]) >= len(drawn[1])  # the shorter line covers the longer one
    in_place.clear()
    wiped = tty.getvalue().split("\r")[-2]
    assert wiped.strip() == "" and len(wiped) >= len(drawn[2].rstrip())  # the line is blanked


def test_medseg_home(medseg_home) -> None:  # type: ignore[no-untyped-def]
    assert data_dir().parent == medseg_home
    assert cache_dir().is_dir() and cache_dir().parent == medseg_home
