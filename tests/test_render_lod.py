"""The 3D view's level-of-detail ladder: coarser when a drag frame is slow, finer when fast."""

from __future__ import annotations

import pytest

from medseg_gui.rendering.level_of_detail import LADDER, FrameRateLadder


def test_ladder_is_finest_first_and_starts_at_the_old_quality():
    assert LADDER[0].image_sample == 2.0 and LADDER[0].shade
    grids = [q.image_sample for q in LADDER]
    assert grids == sorted(grids)


def test_slow_frames_climb_fast_frames_come_back_and_the_ends_hold():
    lod = FrameRateLadder(0.1)
    assert lod.after_frame(0.5) is LADDER[1]
    for _ in range(20):
        lod.after_frame(0.5)
    assert lod.quality is LADDER[-1]
    assert lod.after_frame(0.06) is LADDER[-1]  # within the band: stays
    assert lod.after_frame(0.01) is LADDER[-2]
    for _ in range(20):
        lod.after_frame(0.0)
    assert lod.level == 0


def test_empty_ladder_is_refused():
    with pytest.raises(ValueError):
        FrameRateLadder(0.1, ladder=())
