"""A scale bar for a 2D view: a line of a round length in mm with its label, bottom right."""

from __future__ import annotations

from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkRenderingCore import (
    vtkActor2D,
    vtkPolyDataMapper2D,
    vtkRenderer,
    vtkTextActor,
)

# Round lengths the bar may show (mm); it takes the longest that fits in a quarter of the view.
LENGTHS_MM = (1, 2, 5, 10, 20, 50, 100, 200, 500)
_MARGIN_PX = 12


def bar_length_mm(mm_per_pixel: float, view_width_px: int) -> float:
    """The longest round length whose bar is at most a quarter of the view's width."""
    fits = [mm for mm in LENGTHS_MM if mm / mm_per_pixel <= view_width_px / 4]
    return float(fits[-1] if fits else LENGTHS_MM[0])


class ScaleBar:
    """Line and label actors in display coordinates; call :meth:`update` before each render."""

    def __init__(self) -> None:
        self._points = vtkPoints()
        self._points.SetNumberOfPoints(4)
        lines = vtkCellArray()
        lines.InsertNextCell(2, [0, 1])  # the bar
        lines.InsertNextCell(2, [1, 2])  # a tick at its right end
        lines.InsertNextCell(2, [0, 3])  # and at its left end
        poly = vtkPolyData()
        poly.SetPoints(self._points)
        poly.SetLines(lines)
        mapper = vtkPolyDataMapper2D()
        mapper.SetInputData(poly)
        self.line = vtkActor2D()
        self.line.SetMapper(mapper)
        self.line.GetProperty().SetColor(0.9, 0.9, 0.6)
        self.line.GetProperty().SetLineWidth(2)
        self.text = vtkTextActor()
        prop = self.text.GetTextProperty()
        prop.SetFontSize(12)
        prop.SetColor(0.9, 0.9, 0.6)
        prop.SetJustificationToRight()
        self.length_mm = 0.0

    def add_to(self, renderer: vtkRenderer) -> None:
        renderer.AddViewProp(self.line)
        renderer.AddViewProp(self.text)

    def set_visible(self, visible: bool) -> None:
        self.line.SetVisibility(visible)
        self.text.SetVisibility(visible)

    def update(self, mm_per_pixel: float, width_px: int) -> None:
        """Size the bar for a view ``width_px`` wide showing ``mm_per_pixel``."""
        self.length_mm = bar_length_mm(mm_per_pixel, width_px)
        length_px = self.length_mm / mm_per_pixel
        right = width_px - _MARGIN_PX
        left = right - length_px
        y = _MARGIN_PX
        for n, (x, yy) in enumerate(((left, y), (right, y), (right, y + 5), (left, y + 5))):
            self._points.SetPoint(n, x, yy, 0.0)
        self._points.Modified()
        label = f"{self.length_mm / 10:g} cm" if self.length_mm >= 10 else f"{self.length_mm:g} mm"
        self.text.SetInput(label)
        self.text.SetPosition(right, y + 8)
