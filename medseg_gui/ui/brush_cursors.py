"""The brush cursor of every slice view: a circle of the brush size following the mouse."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF

from medseg_gui.rendering.edit_feedback import BrushCursor, world_to_view_xy
from medseg_gui.rendering.slicing import Orientation

if TYPE_CHECKING:
    from medseg_gui.ui.slice_widget import SliceViewWidget


class BrushCursors:
    """One :class:`BrushCursor` per slice view, styled together."""

    def __init__(self, views: dict[Orientation, SliceViewWidget]) -> None:
        self.views = views
        self._cursors = {o: BrushCursor(w.view.renderer) for o, w in views.items()}

    def __getitem__(self, orientation: Orientation) -> BrushCursor:
        return self._cursors[orientation]

    def style(self, color: Sequence[float], sphere: bool) -> None:
        """Segment colour (white for the eraser); an inner ring marks the 3D sphere."""
        for cursor in self._cursors.values():
            cursor.set_style(color, sphere=sphere)

    def move(self, widget: SliceViewWidget, pos: QPointF, diameter_mm: float) -> None:
        """Centre the widget's cursor under a mouse position (hidden off the image)."""
        world = widget.world_at(pos)
        layout = widget.view.layout
        cursor = self._cursors[widget.view.orientation]
        if world is None or layout is None:
            cursor.hide()
        else:
            cursor.show_at(world_to_view_xy(layout, world), diameter_mm)

    def hide(self, widget: SliceViewWidget | None = None) -> None:
        """Hide one widget's cursor (or all) and redraw where it was shown."""
        for o, cursor in self._cursors.items():
            if cursor.visible and (widget is None or widget.view.orientation is o):
                cursor.hide()
                self.views[o].render_view()
