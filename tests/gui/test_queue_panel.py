"""Send to training from the window: the de-identified case appears in the Queue dock."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from medseg_gui.core.review import ReviewStatus
from medseg_gui.inference.models import resolve_model
from medseg_gui.io.imagefile import read_image
from medseg_gui.training.queue import TrainingQueue
from medseg_gui.training.queue_commands import skipped_segments
from tests.gui.workflow_helpers import open_demo, segment

pytestmark = pytest.mark.gui


def test_send_to_training_lists_the_case_and_remove_deletes_it(qtbot, window):  # type: ignore[no-untyped-def]
    open_demo(qtbot, window)
    seg = segment(qtbot, window)
    draft = seg.segments[0].review
    assert draft is not None and draft.status is ReviewStatus.DRAFT  # the AI's, not reviewed
    # A correction: erase one slice of the AI mask, as a brush would.
    k = int(seg.labelmap.nonzero()[0][0])
    seg.labelmap[k] = 0
    window.editing.unsaved = True
    panel = window.queue_panel
    assert not panel.send()  # a draft is not sent to training
    assert "Nothing to send: no segment is completed" in panel.error
    # A second segment, still in progress, is left out once the first is completed.
    second = window.segment_panel.add_segment("Node")
    seg.labelmap[k, :6, :6] = second
    window.segment_panel.set_status(1, ReviewStatus.COMPLETED)
    with qtbot.waitSignal(panel.refreshed, timeout=180_000,
                          check_params_cb=lambda items: len(items) == 1):
        assert panel.send()
    assert "left out (not completed): segment 2 'Node' (in progress)" in panel.message
    item = panel.items[0]
    # The node keeps its voxels (fine-tuning leaves them unknown) and is named as skipped.
    assert set(np.unique(read_image(item.mask_file).array)) == {0, 1, 2}
    assert [s.name for s in skipped_segments(item)] == ["Node"]
    assert item.model_ref == resolve_model().ref
    assert item.draft_file is not None and item.draft_file.is_file()
    # The effort is that of the whole correction: the erased slice and the painted node.
    assert item.effort.voxels_removed > 0 and item.effort.voxels_added == 36
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
