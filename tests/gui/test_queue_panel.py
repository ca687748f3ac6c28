"""Send to training from the window: the de-identified case appears in the Queue dock."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from medseg_gui.inference.models import resolve_model
from medseg_gui.training.queue import TrainingQueue
from tests.gui.workflow_helpers import open_demo, segment

pytestmark = pytest.mark.gui


def test_send_to_training_lists_the_case_and_remove_deletes_it(qtbot, window):  # type: ignore[no-untyped-def]
    open_demo(qtbot, window)
    seg = segment(qtbot, window)
    # A correction: erase one slice of the AI mask, as a brush would.
    k = int(seg.labelmap.nonzero()[0][0])
    seg.labelmap[k] = 0
    window.editing.unsaved = True
    panel = window.queue_panel
    with qtbot.waitSignal(panel.refreshed, timeout=180_000,
                          check_params_cb=lambda items: len(items) == 1):
        assert panel.send()
    item = panel.items[0]
    assert item.model_ref == resolve_model().ref
    assert item.draft_file is not None and item.draft_file.is_file()
    assert item.effort.voxels_removed > 0 and item.effort.voxels_added == 0
    assert panel.table.rowCount() == 1
    assert panel.table.item(0, 2).text() == resolve_model().ref
    assert panel.table.item(0, 3).text() == "queued"
    assert panel.table.item(0, 0).data(Qt.ItemDataRole.UserRole) == item.id
    with TrainingQueue() as q:
        assert [i.id for i in q.items()] == [item.id]
    panel.table.selectRow(0)
    with qtbot.waitSignal(panel.refreshed, timeout=30_000):
        assert panel.remove_selected(confirm=True)
    assert panel.table.rowCount() == 0
    with TrainingQueue() as q:
        assert q.items() == []


def test_send_without_segmentation_is_a_message(qtbot, window):  # type: ignore[no-untyped-def]
    assert not window.queue_panel.send()
    assert "Nothing to send" in window.queue_panel.error
