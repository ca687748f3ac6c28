"""The application entry point and background loading: real data, errors, cancel."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QImage

from medseg_gui.core.progress import check
from medseg_gui.io.errors import LoadError
from medseg_gui.rendering.slicing import Orientation
from medseg_gui.ui.app import main
from medseg_gui.ui.main_window import MainWindow
from tests.gui.conftest import LEFT, marker_volume

pytestmark = pytest.mark.gui


def image_array(path) -> np.ndarray:  # type: ignore[no-untyped-def]
    img = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB888)
    assert not img.isNull()
    arr = np.frombuffer(img.constBits(), np.uint8, img.sizeInBytes())
    return arr.reshape(img.height(), img.bytesPerLine())[:, : 3 * img.width()].reshape(
        img.height(), img.width(), 3)


def test_screenshot_of_real_ct(qapp, shared_data, tmp_path):  # type: ignore[no-untyped-def]
    case = shared_data / "ibsi_sts" / "nifti" / "STS_008"
    out = tmp_path / "shot.png"
    rc = main([str(case / "CT_image.nii.gz"), "--labels", str(case / "CT_mask.nii.gz"),
               "--screenshot", str(out), "--size", "1000x800"])
    assert rc == 0
    rgb = image_array(out)
    assert rgb.shape[:2] == (800, 1000)
    h, w = rgb.shape[:2]
    # All three slice views show anatomy (grey levels) and the orange overlay.
    for quad in (rgb[: h // 2, : w // 2], rgb[: h // 2, w // 2:], rgb[h // 2:, : w // 2]):
        grey = (quad.min(axis=-1) > 60) & (np.ptp(quad, axis=-1) < 10)
        orange = (quad[..., 0] > 150) & (quad[..., 2] < 100) & (quad[..., 1] > 80)
        assert grey.mean() > 0.1 and orange.sum() > 100


def test_demo_opens_the_demo_study_segmented_by_the_default_model(qapp, tmp_path, capsys):  # type: ignore[no-untyped-def]
    out = tmp_path / "demo.png"
    rc = main(["--screenshot", str(out), "--size", "1000x800"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "Segmented by sts-tumour-unet:1.1.0" in printed  # the AI's draft, not the reference
    rgb = image_array(out)
    axial = rgb[: 400, : 500]  # the top-left view: the tumour is drawn in the model's colour
    red = (axial[..., 0] > 150) & (axial[..., 1] < 120) & (axial[..., 2] < 120)
    assert red.sum() > 500


def test_missing_path_exits_nonzero_without_dialog(qapp, tmp_path, capsys, medseg_home):  # type: ignore[no-untyped-def]
    out = tmp_path / "shot.png"
    rc = main([str(tmp_path / "nope"), "--screenshot", str(out)])
    assert rc == 1
    assert "no such file" in capsys.readouterr().err
    assert out.is_file()  # the (empty) window is still saved
    log = (medseg_home / "logs" / "medseg.log").read_text(encoding="utf-8")
    assert "medseg-gui started" in log and "shown to the user" in log and "nope" in log


def test_load_error_shows_a_message_box(qtbot, monkeypatch):  # type: ignore[no-untyped-def]
    shown = []
    monkeypatch.setattr("medseg_gui.ui.main_window.QMessageBox.warning",
                        lambda parent, title, text: shown.append(text))

    def bad_loader(path, progress):  # type: ignore[no-untyped-def]
        raise LoadError(path, "not a DICOM file")

    w = MainWindow(loader=bad_loader)
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.loadFailed, timeout=5000):
        w.open_path("/x/broken.dcm")
    assert shown == ["/x/broken.dcm: not a DICOM file"]
    assert w.volume is None and not w.loading


def test_loading_runs_off_the_gui_thread_and_can_be_cancelled(qtbot):  # type: ignore[no-untyped-def]
    import threading
    import time

    threads = []
    release = threading.Event()

    def slow_loader(path, progress):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread())
        for n in range(200):
            check(progress, n / 200, "reading")
            release.wait(0.01)
        return marker_volume("lps-iso", LEFT)

    w = MainWindow(loader=slow_loader, dialogs=False)
    qtbot.addWidget(w)
    w.open_path("slow")
    assert w.loading
    time.sleep(0.05)
    qtbot.wait(50)  # the GUI thread keeps running while the loader works
    w.cancel_loading()
    qtbot.waitUntil(lambda: not w.loading, timeout=5000)
    assert threads and threads[0] is not threading.main_thread()
    assert w.volume is None

    with qtbot.waitSignal(w.studyLoaded, timeout=10000):
        w.open_path("slow again")
    assert w.volume is not None
    assert w.views[Orientation.AXIAL].view.layout is not None


def _marker_with_mask(tmp_path):  # type: ignore[no-untyped-def]
    """A small marker study and its mask as a label NIfTI (what Open labels reads)."""
    from medseg_gui.core.volume import Volume
    from medseg_gui.io.imagefile import write_image

    volume = marker_volume("lps-iso", LEFT)
    mask = write_image(Volume((volume.array > 0).astype(np.uint8), volume.geometry),
                       tmp_path / "mask.nii.gz")
    return volume, mask


def test_open_labels_overlays_in_background(qtbot, tmp_path):  # type: ignore[no-untyped-def]
    volume, mask = _marker_with_mask(tmp_path)
    w = MainWindow(dialogs=False)
    qtbot.addWidget(w)
    w.set_volume(volume)
    w.open_labels(mask)
    qtbot.waitUntil(lambda: w.segmentation is not None, timeout=5000)
    assert [s.label for s in w.segmentation.segments] == [1]
    assert "segment 1" in w.readout_text(LEFT).lower()


def test_open_labels_dialog_offers_dicom_and_opens_the_demo_rtstruct(qtbot, monkeypatch):  # type: ignore[no-untyped-def]
    from medseg_gui.resources import DEMO_RTSTRUCT
    from tests.gui.editing_helpers import demo_volume

    asked = []

    def dialog(parent, title, folder, filters):  # type: ignore[no-untyped-def]
        asked.append(filters)
        return str(DEMO_RTSTRUCT), filters.split(";;")[0]

    monkeypatch.setattr("medseg_gui.ui.main_window.QFileDialog.getOpenFileName", dialog)
    w = MainWindow(dialogs=False)
    qtbot.addWidget(w)
    w.set_volume(demo_volume())
    w._ask_open_labels()
    qtbot.waitUntil(lambda: w.segmentation is not None, timeout=20000)
    first = asked[0].split(";;")[0]
    assert "*.dcm" in first and "*.nii.gz" in first and "*.nrrd" in first
    assert "*.mha" not in first  # no mask reader for it: it would only fail
    assert w.segmentation.labelmap.any() and not w.last_error


def test_open_labels_cancels_the_load_it_replaces(qtbot, tmp_path):  # type: ignore[no-untyped-def]
    import threading

    gate = threading.Event()

    def gated_loader(path, progress):  # type: ignore[no-untyped-def]
        gate.wait(10)
        check(progress, 0.5, "reading")  # raises Cancelled once the task was cancelled
        return marker_volume("ras-thick", LEFT)

    volume, mask = _marker_with_mask(tmp_path)
    w = MainWindow(loader=gated_loader, dialogs=False)
    qtbot.addWidget(w)
    w.set_volume(volume)
    loaded = []
    w.studyLoaded.connect(loaded.append)
    w.open_path("slow study")
    study_task = w._task
    w.open_labels(mask)
    labels_task = w._task
    assert study_task is not None and study_task._cancel.is_set()
    w.open_labels(mask)  # a second labels load replaces (and cancels) the first
    assert labels_task is not None and labels_task._cancel.is_set()
    qtbot.waitUntil(lambda: w.segmentation is not None and not w.loading, timeout=10000)
    gate.set()
    qtbot.wait(200)  # the cancelled study load ends without replacing anything
    assert w.volume is volume and not loaded
    assert [s.label for s in w.segmentation.segments] == [1]


def test_a_replaced_labels_load_stops_instead_of_running_to_its_end(qtbot, tmp_path,
                                                                     monkeypatch):  # type: ignore[no-untyped-def]
    import threading

    from medseg_gui.io import masks

    gate, returned = threading.Event(), []

    def held_load_mask(path, volume, progress):  # type: ignore[no-untyped-def]
        if not returned:  # the first load waits until a second one has replaced it
            returned.append(None)
            gate.wait(10)
        seg = masks.load_mask(path, volume, progress)
        returned.append(seg)
        return seg

    monkeypatch.setattr("medseg_gui.ui.main_window.load_mask", held_load_mask)
    volume, mask = _marker_with_mask(tmp_path)
    w = MainWindow(dialogs=False)
    qtbot.addWidget(w)
    w.set_volume(volume)
    w.open_labels(mask)
    first = w._task
    ended: list[str] = []
    first.signals.cancelled.connect(lambda _t: ended.append("cancelled"))
    first.signals.finished.connect(lambda _t, _r: ended.append("finished"))
    qtbot.waitUntil(lambda: len(returned) == 1, timeout=5000)  # the first is running
    w.open_labels(mask)
    qtbot.waitUntil(lambda: w.segmentation is not None and not w.loading, timeout=10000)
    gate.set()
    qtbot.waitUntil(lambda: ended == ["cancelled"], timeout=5000)
    assert len(returned) == 2  # the replaced load read nothing: only the second returned


@pytest.mark.parametrize("as_folder", [False, True], ids=["file", "folder"])
def test_a_dicom_seg_opened_as_the_study_is_refused(qtbot, shared_data, tmp_path, as_folder):  # type: ignore[no-untyped-def]
    seg = tmp_path / "seg" / "liver.dcm"
    seg.parent.mkdir()
    seg.write_bytes((shared_data / "dcmqi_seg" / "segmentations" / "liver.dcm").read_bytes())
    path = seg.parent if as_folder else seg
    w = MainWindow(dialogs=False)  # the default loader, and the study browser for a folder
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.loadFailed, timeout=20000) as failed:
        w.open_path(path)
    kind = "holds a DICOM SEG (segmentation) but no image series" if as_folder else \
        "a DICOM SEG (segmentation), not an image series"
    assert failed.args == [f"{path}: {kind}; open it with --labels on its CT"]
    assert w.volume is None and not w.loading


def test_a_failing_background_task_logs_its_traceback(qapp, medseg_home):  # type: ignore[no-untyped-def]
    from medseg_gui.core.logs import setup_logging
    from medseg_gui.ui.workers import Task

    setup_logging()
    failures = []

    def work(_progress):  # type: ignore[no-untyped-def]
        raise ValueError("voxel spacing is zero in broken.nii.gz")

    task = Task(work)
    task.signals.failed.connect(lambda _t, exc: failures.append(exc))
    task.run()  # on this thread: what the pool would do
    assert len(failures) == 1  # the user gets the one message ...
    log = (medseg_home / "logs" / "medseg.log").read_text(encoding="utf-8")
    assert "Traceback" in log and "voxel spacing is zero in broken.nii.gz" in log  # ... support


CLOSE_WHILE_THE_AI_LOADS = """
import sys
from PySide6.QtCore import QTimer
import medseg_gui.ui.app as app
from medseg_gui.resources import DEMO_STUDY

class ClosedAtOnce(app.MainWindow):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.studyLoaded.connect(self.choose_ai_and_close)

    def choose_ai_and_close(self, _volume):
        self.edit_actions.tools["ai"].trigger()  # the model starts loading in the background
        QTimer.singleShot(20, self.close)  # and the user closes the window at once

app.MainWindow = ClosedAtOnce
sys.exit(app.main([str(DEMO_STUDY), "--size", "900x700"]))
"""


def test_closing_while_the_ai_model_loads_ends_cleanly(medseg_home):  # type: ignore[no-untyped-def]
    """The real main(), in its own process: the window closes while the promptable model is
    still loading on the thread pool. Before, Python shut down under the loader: its imports
    failed and it emitted from a deleted object, two tracebacks for a user who did nothing
    wrong."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, "-c", CLOSE_WHILE_THE_AI_LOADS], cwd=root,
                         env=dict(os.environ, PYTHONPATH=str(root)), capture_output=True,
                         text=True, timeout=240)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    assert "Traceback" not in out and "Signal source has been deleted" not in out, out[-3000:]
    log = (medseg_home / "logs" / "medseg.log").read_text(encoding="utf-8")
    assert "medseg-gui started" in log and "failed" not in log, log[-3000:]
