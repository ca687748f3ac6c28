"""The PACS dock against a real Orthanc on loopback (started and stopped here): search finds
the uploaded demo study, retrieve opens it, the segmentation goes back as a DICOM SEG that
Orthanc then lists in the study; a wrong URL is one clear error, never a crash."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("dicomweb_client")

from medseg_gui.core.paths import cache_dir
from medseg_gui.io.pacs import DicomWebClient
from medseg_gui.resources import DEMO_RTSTRUCT, DEMO_STUDY
from medseg_gui.ui.pacs_browser import URL_KEY, PacsBrowser
from medseg_gui.ui.settings import get_str
from tests.orthanc import free_port, running_orthanc

pytestmark = pytest.mark.gui

NET_TIMEOUT_MS = 60_000
LOAD_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    with running_orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        DicomWebClient(str(server["dicomweb"])).store(sorted(DEMO_STUDY.glob("*")))
        yield server


def _search(qtbot, pacs: PacsBrowser, url: str, text: str) -> list:  # type: ignore[no-untyped-def]
    pacs.url.setText(url)
    pacs.query.setText(text)
    with qtbot.waitSignal(pacs.studiesFound, timeout=NET_TIMEOUT_MS) as blocker:
        pacs.search_button.click()
    rows: list = blocker.args[0]
    return rows


def test_search_retrieve_and_send_a_seg(qtbot, window, orthanc) -> None:  # type: ignore[no-untyped-def]
    pacs: PacsBrowser = window.pacs
    url = str(orthanc["dicomweb"])
    open_menu = next(a for a in window.menuBar().actions()[0].menu().actions()
                     if a.text() == "&PACS...")
    open_menu.trigger()
    assert pacs.isVisible()

    # search by patient ID, then by part of the name: the demo study, with its columns
    (study,) = _search(qtbot, pacs, url, "STS_008")
    assert get_str(URL_KEY) == url
    assert pacs.study_table.rowCount() == 1
    assert "CT" in study.modalities and pacs.study_table.item(0, 4).text() == study.modalities
    assert _search(qtbot, pacs, url, "nobody-by-that-name") == []
    (again,) = _search(qtbot, pacs, url, "")
    assert again == study

    # selecting the study lists its series; retrieve opens it in the window
    with qtbot.waitSignal(pacs.seriesFound, timeout=NET_TIMEOUT_MS) as blocker:
        pacs.study_table.selectRow(0)
    (series,) = blocker.args[0]
    assert series.modality == "CT" and series.images == "51"
    pacs.series_table.selectRow(0)
    assert pacs.retrieve_button.isEnabled()
    with qtbot.waitSignal(window.studyLoaded, timeout=LOAD_TIMEOUT_MS) as loaded:
        pacs.retrieve_button.click()
    volume = loaded.args[0]
    assert volume.array.shape == (51, 137, 141)
    assert volume.info.study_uid == study.study_uid
    folder = cache_dir() / "pacs" / study.study_uid / series.series_uid
    assert Path(volume.source).resolve() == folder.resolve()
    assert len(list(folder.glob("*.dcm"))) == 51

    # the demo RTSTRUCT becomes the segmentation; File > Send segmentation to PACS stores a SEG
    window.open_labels(DEMO_RTSTRUCT)
    qtbot.waitUntil(lambda: window.segmentation is not None, timeout=LOAD_TIMEOUT_MS)
    assert window.segmentation.labelmap.any()
    with qtbot.waitSignal(pacs.sent, timeout=LOAD_TIMEOUT_MS) as sent:
        pacs.send_action.trigger()
    assert "sent" in window.statusBar().currentMessage()
    listed = DicomWebClient(url).search_series(study.study_uid, Modality="SEG")
    assert [str(s.SeriesInstanceUID) for s in listed] == [sent.args[0]]
    assert pacs.last_error == ""


def test_wrong_url_is_one_clear_error(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    pacs: PacsBrowser = window.pacs
    bad = f"http://127.0.0.1:{free_port()}/dicom-web"
    pacs.url.setText(bad)
    with qtbot.waitSignal(pacs.failed, timeout=NET_TIMEOUT_MS) as blocker:
        pacs.search()
    message = blocker.args[0]
    assert bad in message and "QIDO-RS" in message
    assert window.statusBar().currentMessage() == message
    assert pacs.search_button.isEnabled() and not pacs.busy
    assert pacs.study_table.rowCount() == 0

    # nothing loaded: sending says so instead of failing somewhere deeper
    with qtbot.waitSignal(pacs.failed, timeout=1000) as blocker:
        assert not pacs.send_segmentation()
    assert "Nothing to send" in blocker.args[0]
