"""The AI confidence overlay and the low-confidence region list, after segmenting the demo with
the shipped model on the CPU (one run for the whole module: the steps below follow one draft)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from medseg_gui.inference.confidence import uncertain_regions
from medseg_gui.rendering.slicing import Orientation
from medseg_gui.ui.confidence_panel import SHORTCUT
from tests.gui.workflow_helpers import open_demo, segment

pytestmark = pytest.mark.gui


def changed_pixels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(np.abs(a.astype(int) - b.astype(int)).max(axis=-1) > 30)


def test_confidence_overlay_and_regions_follow_one_ai_draft(qtbot, window):  # type: ignore[no-untyped-def]
    open_demo(qtbot, window)
    panel = window.confidence
    assert not panel.action.isEnabled() and panel.table.rowCount() == 0
    seg = segment(qtbot, window)
    card_ref = seg.segments[0].model

    # The list comes from the worker's report: the same regions the map gives in-process.
    assert panel.probability is not None and panel.draft is seg
    assert panel.regions == uncertain_regions(panel.probability, seg.geometry)
    assert panel.table.rowCount() == len(panel.regions) >= 1
    first = panel.regions[0]
    assert panel.table.item(0, 1).text() == f"{first.volume_ml:.2f}"
    assert panel.table.item(0, 2).text() == f"{first.mean_probability:.2f}"
    assert f"AI confidence of {card_ref} draft" in panel.heading.text()

    # Off by default; the View-menu toggle (C) shows it in every slice view, over the CT only
    # where the model gave some probability. Labels off, so only the confidence layer differs.
    assert panel.action.shortcut().toString() == SHORTCUT
    assert panel.action in window.menuBar().actions()[1].menu().actions()
    window.set_labels_visible(False)
    axial = window.views[Orientation.AXIAL]
    window.set_crosshair(first.centroid_lps)
    plain = axial.capture()
    assert not any(w.view.probability_shown for w in window.views.values())
    panel.action.trigger()
    assert all(w.view.probability_shown for w in window.views.values())
    shown = axial.capture()
    changed = changed_pixels(shown, plain)
    assert changed.sum() > 200, changed.sum()
    # Viridis is blue-green-yellow: the changed pixels turn less red than grey CT.
    rgb = shown[changed].astype(int)
    assert np.median(rgb[:, 1] - rgb[:, 0]) > 0
    # Its own opacity: at 0 the CT is back, and the label overlay's slider is untouched.
    label_opacity = window.overlay_controls.slider.value()
    panel.slider.setValue(0)
    assert changed_pixels(axial.capture(), plain).sum() < 20
    assert window.overlay_controls.slider.value() == label_opacity
    panel.slider.setValue(50)
    window.set_labels_visible(True)

    # Double-clicking a region moves the crosshair of every view to its centroid.
    window.set_crosshair(window.volume.geometry.index_to_world([0, 0, 0]))
    rect = panel.table.visualItemRect(panel.table.item(0, 1))
    qtbot.mouseDClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert np.allclose(window.crosshair, first.centroid_lps)
    k = window.views[Orientation.AXIAL].view
    assert k.slice_index == k.layout.slice_index(k.layout.world_to_view(first.centroid_lps)[2])

    # An edit keeps the AI's map, and the heading says it is the draft's, not the edits'.
    window.editing.delete_segment(seg.segments[0].label)
    assert panel.probability is not None and axial.view.probability_shown
    assert "edited since" in panel.heading.text()

    # Another study clears it all; the toggle stays on for the next draft.
    open_demo(qtbot, window)
    assert panel.probability is None and panel.regions == [] and panel.table.rowCount() == 0
    assert not any(w.view.probability_shown for w in window.views.values())
    assert not panel.action.isEnabled() and panel.action.isChecked()
