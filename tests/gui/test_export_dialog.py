"""The Export dialog, driven through its API (no modal exec): NIfTI and DICOM SEG of the AI
result reopen identical; only the chosen segments are written; no silent overwrite."""

from __future__ import annotations

import numpy as np
import pytest

from medseg_gui.core.segmentation import Segment, Segmentation
from medseg_gui.io.masks import load_mask
from medseg_gui.ui.export_dialog import ExportDialog
from tests.gui.workflow_helpers import open_demo, segment

pytestmark = pytest.mark.gui


def _export(qtbot, window, fmt, out, labels=None, overwrite=None):  # type: ignore[no-untyped-def]
    dialog = ExportDialog(window)
    dialog.set_format(fmt)
    if labels is not None:
        dialog.set_selected(labels)
    dialog.destination.setText(str(out))
    with qtbot.waitSignal(dialog.exported, timeout=120_000) as blocker:
        assert dialog.run_export(overwrite=overwrite)
    return blocker.args[0]


@pytest.mark.parametrize("fmt, name", [("nifti", "ai.nii.gz"), ("dicom-seg", "ai-seg.dcm")])
def test_export_of_the_ai_result_reopens_identical(qtbot, window, tmp_path, fmt, name):  # type: ignore[no-untyped-def]
    open_demo(qtbot, window)
    seg = segment(qtbot, window)
    out = tmp_path / name
    written = _export(qtbot, window, fmt, out)
    assert out in written and out.is_file()
    back = load_mask(out, window.volume)
    assert back.geometry.same_grid(window.volume.geometry)
    assert np.array_equal(back.labelmap, seg.labelmap)
    assert [s.name for s in back.segments] == [s.name for s in seg.segments]


def test_only_chosen_segments_and_no_silent_overwrite(qtbot, window, tmp_path):  # type: ignore[no-untyped-def]
    open_demo(qtbot, window)
    two = Segmentation.empty(window.volume.geometry, [Segment(1, "a"), Segment(2, "b")])
    two.labelmap[5, 10:20, 10:20] = 1
    two.labelmap[6, 30:40, 30:40] = 2
    window.set_segmentation(two)
    out = tmp_path / "b.nii.gz"
    _export(qtbot, window, "nifti", out, labels=[2])
    back = load_mask(out, window.volume)
    assert set(np.unique(back.labelmap)) == {0, 2}
    assert [s.name for s in back.segments] == ["b"]
    before = out.read_bytes()
    dialog = ExportDialog(window)
    dialog.set_format("nifti")
    dialog.destination.setText(str(out))
    assert not dialog.run_export()  # headless: an existing file is never overwritten
    assert "exists" in dialog.error and out.read_bytes() == before
    _export(qtbot, window, "nifti", out, overwrite=True)  # the user said yes
    assert set(np.unique(load_mask(out, window.volume).labelmap)) == {0, 1, 2}


def test_export_error_is_one_message(qtbot, window, tmp_path):  # type: ignore[no-untyped-def]
    open_demo(qtbot, window)
    seg = Segmentation.empty(window.volume.geometry, [Segment(1, "a")])
    window.set_segmentation(seg)
    dialog = ExportDialog(window)
    dialog.set_format("nifti")
    dialog.destination.setText(str(tmp_path / "missing-folder" / "x" / "\0bad.nii.gz"))
    with qtbot.waitSignal(dialog.exportFailed, timeout=30_000):
        dialog.run_export()
    assert dialog.error and window.isVisible()
