"""The AI confidence overlay and the "Low-confidence regions" dock.

When "Segment tumour" applies a draft, :meth:`ConfidencePanel.set_draft` takes the job's
probability map and the regions the worker's child found (``job.report["uncertain"]``, see
:mod:`medseg_gui.inference.confidence`), so nothing here scans the volume: filling the list is a
dozen rows, and showing the overlay hands the map to each view without a copy.

The overlay (View > Show AI confidence, C) is off by default and has its own opacity. Both
refer to one AI result: they are cleared when another study opens or the segmentation is
replaced by anything else (a new AI run, a label file, a recovered session). After the user
edits the mask they still show the model's probability, and the heading says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDockWidget,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.segmentation import Segmentation
from medseg_gui.inference.confidence import HIGH, LOW, UncertainRegion
from medseg_gui.ui import settings

if TYPE_CHECKING:
    from medseg_gui.ui.workstation import Workstation

OPACITY_KEY = "confidence/opacity"
DEFAULT_OPACITY = 50  # percent
SHORTCUT = "C"  # L shows the labels; C the confidence (no other action uses C)
NO_RESULT = "No AI result yet: Segment tumour (Ctrl+T) shows the model's confidence here."


class ConfidencePanel(QDockWidget):
    """Heading, overlay toggle and opacity, and the table of low-confidence regions.

    Activating a row (select, double-click or Enter) moves the crosshair of every view to the
    region's centroid.
    """

    def __init__(self, window: Workstation) -> None:
        super().__init__("Low-confidence regions", window)
        self.setObjectName("ConfidenceDock")
        self.main_window = window
        self.probability: npt.NDArray[np.float16] | None = None
        self.map_geometry: Geometry | None = None
        self.draft: Segmentation | None = None  # the AI result the map belongs to
        self.model = ""
        self.regions: list[UncertainRegion] = []
        self.band = (LOW, HIGH)
        self.edited_since = False

        self.action = QAction("Show AI &confidence", window, checkable=True)
        self.action.setShortcut(QKeySequence(SHORTCUT))
        self.action.setToolTip(f"Overlay the AI's probability in the slice views ({SHORTCUT})")
        self.action.setEnabled(False)
        self.action.toggled.connect(self._show_overlay)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 100)
        self.slider.setToolTip("Opacity of the AI confidence overlay")
        self.slider.setValue(int(str(settings.app_settings().value(OPACITY_KEY,
                                                                   DEFAULT_OPACITY))))
        self.slider.valueChanged.connect(self._opacity_changed)

        body = QWidget()
        column = QVBoxLayout(body)
        self.heading = QLabel(NO_RESULT)
        self.heading.setWordWrap(True)
        column.addWidget(self.heading)
        row = QHBoxLayout()
        toggle = QToolButton()
        toggle.setDefaultAction(self.action)
        row.addWidget(toggle)
        row.addWidget(QLabel("Opacity"))
        row.addWidget(self.slider)
        column.addLayout(row)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["#", "mL", "mean p"])
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        for col in range(3):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Stretch if col else
                                        QHeaderView.ResizeMode.ResizeToContents)
        column.addWidget(self.table)
        self.setWidget(body)
        self.table.itemSelectionChanged.connect(self._selected)
        self.table.itemActivated.connect(lambda item: self.jump(item.row()))
        window.editing.sessionChanged.connect(self._session_changed)
        window.editing.edited.connect(self._edited)
        self._apply_opacity()

    # -- the AI result -----------------------------------------------------------------------
    def set_draft(self, probability: npt.NDArray[np.float16], draft: Segmentation,
                  report: dict[str, Any], model: str) -> None:
        """Show the confidence of ``draft`` (just applied), from its job's map and report."""
        self.probability, self.map_geometry, self.draft, self.model = (
            probability, draft.geometry, draft, model)
        self.regions = [UncertainRegion.from_dict(d) for d in report.get("uncertain", [])]
        self.band = tuple(report.get("uncertain_band", (LOW, HIGH)))
        self.edited_since = False
        self.action.setEnabled(True)
        self._fill()
        self._show_overlay(self.action.isChecked())

    def clear(self) -> None:
        """Forget the AI result: empty list, no overlay (the toggle keeps its state)."""
        self.probability = self.map_geometry = self.draft = None
        self.model, self.regions, self.edited_since = "", [], False
        self.action.setEnabled(False)
        self._fill()
        self._show_overlay(False)

    def jump(self, row: int) -> None:
        """Move every view's crosshair to region ``row``'s centroid."""
        if 0 <= row < len(self.regions):
            self.main_window.set_crosshair(np.asarray(self.regions[row].centroid_lps))

    # -- rows ----------------------------------------------------------------------------------
    def _fill(self) -> None:
        self._update_heading()
        self.table.setRowCount(0)
        for n, region in enumerate(self.regions):
            self.table.insertRow(n)
            x, y, z = region.centroid_lps
            tip = (f"{region.voxels} voxels, centre LPS ({x:.1f}, {y:.1f}, {z:.1f}) mm; "
                   f"from {self.model}'s probability map")
            for col, text in enumerate((str(n + 1), f"{region.volume_ml:.2f}",
                                        f"{region.mean_probability:.2f}")):
                item = QTableWidgetItem(text)
                item.setToolTip(tip)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(n, col, item)

    def _update_heading(self) -> None:
        if self.draft is None:
            self.heading.setText(NO_RESULT)
            self.heading.setToolTip("")
            return
        low, high = self.band
        what = (f"{len(self.regions)} region(s) where the probability is {low:g}-{high:g}, "
                "largest first; double-click one to go there." if self.regions else
                f"No region where the probability is {low:g}-{high:g}.")
        edited = ("<br><i>The mask was edited since: this is still the AI's probability, not "
                  "your corrections.</i>" if self.edited_since else "")
        self.heading.setText(f"<b>AI confidence of {self.model} draft</b><br>{what}{edited}")
        self.heading.setToolTip(f"Computed by {self.model} with the draft it produced; editing "
                                "the mask does not change it.")

    def _selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self.jump(rows[0].row())

    # -- overlay -------------------------------------------------------------------------------
    def _show_overlay(self, on: bool) -> None:
        shown = self.probability if on else None
        for widget in self.main_window.views.values():
            widget.view.set_probability(shown, self.map_geometry)
        self.main_window.render_all()

    def _apply_opacity(self) -> None:
        for widget in self.main_window.views.values():
            widget.view.set_probability_opacity(self.slider.value() / 100)

    def _opacity_changed(self, value: int) -> None:
        self._apply_opacity()
        self.main_window.render_all()
        settings.set_value(OPACITY_KEY, value)

    # -- following the segmentation -----------------------------------------------------------
    def _session_changed(self) -> None:
        if self.draft is not None and self.main_window.segmentation is not self.draft:
            self.clear()

    def _edited(self, *_: Any) -> None:
        if self.draft is not None and not self.edited_since:
            self.edited_since = True
            self._update_heading()


def install_confidence(window: Workstation) -> ConfidencePanel:
    """The dock (left, under the study browser: the right-hand side is full) and the View menu
    toggle, next to "Show labels"."""
    from medseg_gui.ui.viewer_setup import find_menu

    panel = ConfidencePanel(window)
    window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, panel)
    find_menu(window, "View").addAction(panel.action)
    return panel
