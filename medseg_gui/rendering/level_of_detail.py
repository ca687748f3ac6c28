"""How coarse the 3D view draws while the user drags it: a ladder of quality levels and a
frame-time feedback that climbs it. Pure Python, no VTK.

VTK's own answer (``AutoAdjustSampleDistances`` with the render window's desired update rate)
did not reach the rate on software OpenGL: measured on the 2-core llvmpipe machine it kept the
ray grid at 2 pixels and the frame at 0.8-1.2 s. Shading is what costs most there (about three
times an unshaded frame, since every step along a ray takes the gradient), so the ladder first
widens the ray grid a little, then drops shading for the drag, then widens again. The still
frame drawn when the user lets go is always the full-quality one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Quality:
    """One level: ray grid spacing (pixels), step along the ray (times the finest voxel size),
    and whether the volume is shaded."""

    image_sample: float
    sample_factor: float
    shade: bool


# Finest first. The first level is what the view had before this ladder (a 2 px grid, two
# voxels per step, shaded).
LADDER = (
    Quality(2.0, 2.0, True),
    Quality(3.0, 2.0, True),
    Quality(4.0, 2.0, False),
    Quality(5.0, 3.0, False),
    Quality(6.0, 3.0, False),
    Quality(8.0, 4.0, False),
)


class FrameRateLadder:
    """Picks the level for the next interactive frame from the time the last one took.

    Parameters
    ----------
    budget_s
        The frame time to stay under while dragging (seconds).
    ladder
        The levels, finest first.

    A frame over ``0.8 * budget_s`` moves one level coarser; one under ``0.35 * budget_s``
    one level finer (the gap keeps it from flipping between two levels every frame). The level
    is kept between drags, so the next drag starts where the last one settled.
    """

    def __init__(self, budget_s: float, ladder: tuple[Quality, ...] = LADDER) -> None:
        if not ladder:
            raise ValueError("the ladder needs at least one level")
        self.budget_s = float(budget_s)
        self.ladder = ladder
        self.level = 0

    @property
    def quality(self) -> Quality:
        return self.ladder[self.level]

    def after_frame(self, seconds: float) -> Quality:
        """Record an interactive frame's time; the quality for the next one."""
        if seconds > 0.8 * self.budget_s:
            self.level = min(self.level + 1, len(self.ladder) - 1)
        elif seconds < 0.35 * self.budget_s:
            self.level = max(self.level - 1, 0)
        return self.quality
