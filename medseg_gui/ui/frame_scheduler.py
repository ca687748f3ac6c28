"""When the slice views draw: the latest state, once per turn of the event loop.

A wheel burst or a held arrow key sends slice steps faster than software OpenGL draws frames.
Drawing each step as it arrives queues frames behind the user's finger; here a step only moves
the views' state (cheap), and the frame is drawn when the event loop has handled every input
event that was waiting (a zero-interval timer), so the view shows the latest slice and never a
backlog.

Views whose picture changed (the scrolled view, or a view whose plane moved) draw on that next
turn. Views where only the crosshair line moved (the other two while one view is scrolled)
draw once the burst pauses (:data:`FOLLOW_MS`), so a scroll renders one view per step, not
three. Views that changed as a side effect of what the user does in another view (a brush
stroke shows in the views whose slice it crosses) are requested with ``after=True``: they draw
on the same turn, after the view the user works in, so they never hold its frame back.
"""

from __future__ import annotations

from typing import Protocol

from PySide6.QtCore import QObject, QTimer

# How long the crosshair lines of the other views may lag behind a scroll (ms).
FOLLOW_MS = 120


class Drawable(Protocol):
    def render_view(self) -> None: ...


class FrameScheduler(QObject):
    """Coalesces render requests for a set of views.

    Parameters
    ----------
    parent
        Owner of the timers.
    follow_ms
        Delay after the last request before the views that only follow are drawn.
    """

    def __init__(self, parent: QObject | None = None, follow_ms: int = FOLLOW_MS) -> None:
        super().__init__(parent)
        self._now: dict[Drawable, None] = {}  # insertion-ordered sets
        self._after: dict[Drawable, None] = {}
        self._later: dict[Drawable, None] = {}
        self._soon = QTimer(self, singleShot=True, interval=0)
        self._soon.timeout.connect(self.draw_changed)
        self._follow = QTimer(self, singleShot=True, interval=follow_ms)
        self._follow.timeout.connect(self.draw_followers)
        self.frames = 0  # views drawn so far (for tests and benchmarks)

    def request(self, view: Drawable, *, changed: bool = True, after: bool = False) -> None:
        """Draw ``view`` on the next turn (``changed``) or when requests pause (not changed).

        ``after``: on the next turn, after the views requested without it.
        """
        if after:
            self._later.pop(view, None)
            self._after[view] = None
            if not self._soon.isActive():
                self._soon.start()
        elif changed:
            self._later.pop(view, None)
            self._now[view] = None
            if not self._soon.isActive():
                self._soon.start()
        elif view not in self._now:
            self._later[view] = None
            self._follow.start()  # restarted by every request: fires when the burst pauses

    @property
    def pending(self) -> bool:
        return bool(self._now or self._after or self._later)

    def draw_changed(self) -> None:
        self._soon.stop()
        views = list(self._now) + [v for v in self._after if v not in self._now]
        self._now, self._after = {}, {}
        self._draw(views)

    def draw_followers(self) -> None:
        self._follow.stop()
        views, self._later = list(self._later), {}
        self._draw(views)

    def draw_all(self) -> None:
        """Draw everything requested, now."""
        self.draw_changed()
        self.draw_followers()

    def cancel(self, view: Drawable) -> None:
        """Forget ``view``'s requests (it was drawn by other means)."""
        self._now.pop(view, None)
        self._after.pop(view, None)
        self._later.pop(view, None)

    def _draw(self, views: list[Drawable]) -> None:
        for view in views:
            view.render_view()
            self.frames += 1
