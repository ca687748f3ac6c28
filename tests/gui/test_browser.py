"""The study browser: index a folder with two real CT series, load the largest, double-click
the other, drag and drop, recent studies, cancel, and ``medseg-gui FOLDER``."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from medseg_gui.ui import settings
from medseg_gui.ui.app import main
from medseg_gui.ui.study_browser import ENTRY_ROLE, StudyBrowser

pytestmark = pytest.mark.gui


@pytest.fixture
def two_series(shared_data: Path, tmp_path: Path) -> Path:
    """A folder holding the two CRLM CTs (41 and 51 slices of 512 x 512), as links."""
    root = tmp_path / "two_series"
    for case in ("CRLM-CT-1004", "CRLM-CT-1006"):
        target = root / case
        target.mkdir(parents=True)
        for f in sorted((shared_data / "crlm_unlabeled" / case / "image").glob("*.dcm")):
            (target / f.name).symlink_to(f)
    return root


def _series_texts(browser: StudyBrowser) -> list[tuple[str, str]]:
    out = []
    for idx in browser.series_rows():
        model = browser.model
        out.append((model.index(idx.row(), 1, idx.parent()).data(),
                    model.index(idx.row(), 2, idx.parent()).data()))
    return out


def test_folder_with_two_series_loads_the_largest_then_double_click(window, qtbot, two_series):  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(window.studyLoaded, timeout=60000):
        window.open_path(two_series)
    assert window.volume.array.shape == (51, 512, 512)
    assert window.last_error == ""
    browser = window.browser
    assert sorted(_series_texts(browser)) == [("CT", "41"), ("CT", "51")]
    current = browser.tree.currentIndex()
    assert len(current.data(ENTRY_ROLE).files) == 51

    # Double-click the other series: it loads in the background.
    other = next(i for i in browser.series_rows() if len(i.data(ENTRY_ROLE).files) == 41)
    browser.tree.scrollTo(other)
    rect = browser.tree.visualRect(other)
    with qtbot.waitSignal(window.studyLoaded, timeout=60000):
        # QTest's double click lacks the first press a real one has: click, then double.
        qtbot.mouseClick(browser.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        qtbot.mouseDClick(browser.tree.viewport(), Qt.MouseButton.LeftButton,
                          pos=rect.center())
    assert window.volume.array.shape == (41, 512, 512)
    assert settings.recent_studies()[0] == str(two_series.resolve())


def test_recent_studies_persist_and_reopen(qtbot, two_series):  # type: ignore[no-untyped-def]
    settings.add_recent_study(two_series)
    settings.add_recent_study(two_series / "CRLM-CT-1004")
    settings.add_recent_study(two_series)  # moves to the front, no duplicate
    assert settings.recent_studies() == [str(two_series.resolve()),
                                         str((two_series / "CRLM-CT-1004").resolve())]
    browser = StudyBrowser()
    qtbot.addWidget(browser)
    browser._fill_recent()
    texts = [a.text() for a in browser.recent_menu.actions()]
    assert texts[:2] == settings.recent_studies()
    with qtbot.waitSignal(browser.seriesActivated, timeout=60000) as blocker:
        browser.recent_menu.actions()[1].trigger()
    assert len(blocker.args[0].files) == 41


def test_drop_a_folder_onto_the_window(window, qtbot, two_series):  # type: ignore[no-untyped-def]
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(two_series / "CRLM-CT-1006"))])
    args = (QPoint(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier)
    enter = QDragEnterEvent(*args)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    # Qt routes a synthetic Drop only to the target of a real drag, so hand it to the filter
    # the way QApplication would.
    drop = QDropEvent(QPointF(50, 50), *args[1:])
    with qtbot.waitSignal(window.studyLoaded, timeout=60000):
        assert window.browser.drop_handler.eventFilter(window, drop)
    assert window.volume.array.shape == (51, 512, 512)


def test_drop_several_files_indexes_their_folder(window, qtbot, two_series):  # type: ignore[no-untyped-def]
    files = sorted(str(p) for p in (two_series / "CRLM-CT-1004").glob("*.dcm"))[:5]
    with qtbot.waitSignal(window.studyLoaded, timeout=60000):
        window.browser.drop_handler.drop_paths(files)
    assert window.volume.array.shape == (41, 512, 512)


def test_indexing_can_be_cancelled(qtbot, monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    from medseg_gui.core.progress import check

    started = threading.Event()

    def slow_index(folder, progress):  # type: ignore[no-untyped-def]
        started.set()
        for n in range(500):
            check(progress, n / 500, "indexing")
            threading.Event().wait(0.01)
        raise AssertionError("not cancelled")

    monkeypatch.setattr("medseg_gui.ui.study_browser.index_folder", slow_index)
    browser = StudyBrowser()
    qtbot.addWidget(browser)
    browser.show()
    failed: list[str] = []
    browser.indexFailed.connect(failed.append)
    browser.open_folder(tmp_path, auto_load=True)
    assert browser.busy and browser.progress.isVisible()
    assert started.wait(5)
    qtbot.mouseClick(browser.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not browser.busy, timeout=5000)
    assert not failed and browser.index is None and not browser.progress.isVisible()


def test_empty_folder_reports_one_clear_error(window, qtbot, tmp_path):  # type: ignore[no-untyped-def]
    (tmp_path / "notes.txt").write_text("not DICOM")
    with qtbot.waitSignal(window.loadFailed, timeout=10000) as blocker:
        window.open_path(tmp_path)
    assert "no DICOM image series found" in blocker.args[0]
    assert window.volume is None


def test_command_line_folder_with_two_series(qapp, two_series, tmp_path):  # type: ignore[no-untyped-def]
    out = tmp_path / "shot.png"
    rc = main([str(two_series), "--screenshot", str(out), "--size", "1100x800"])
    assert rc == 0 and out.is_file()
