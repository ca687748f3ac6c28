"""``medseg-gui [PATH] [--labels MASK] [--segment] [--confidence] [--measurements]
[--screenshot OUT.png]``.

With no PATH it opens the bundled demo study and segments it with the default model (the AI
draft a radiologist would start correcting from); the demo's reference contour opens with
``--labels resources/demo/STS_008/dicom/mask/RS.dcm`` or File > Open labels. ``--confidence``
turns on the AI confidence overlay and selects the largest low-confidence region, whose centroid
the views then show. ``--measurements`` shows the Segment statistics dock and moves the views to
the first segment's RECIST slice once it is measured.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QEventLoop, Qt, QThreadPool, QTimer
from PySide6.QtWidgets import QApplication

from medseg_gui.core.logs import setup_logging
from medseg_gui.resources import DEMO_STUDY
from medseg_gui.ui.main_window import MainWindow
from medseg_gui.ui.settings import app_settings

# How long --screenshot waits for loading (and segmenting) before giving up (seconds).
SCREENSHOT_TIMEOUT_S = 300
# How long the closed application waits for background work to end before Python shuts down.
BACKGROUND_WAIT_MS = 30_000


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="medseg-gui", description="Open a study in the viewer.")
    p.add_argument("path", nargs="?", help="DICOM folder or file, .nii(.gz), .nrrd or .mha "
                   "(default: the bundled demo study)")
    p.add_argument("--labels", help="a label image (.nii.gz, .nrrd, ...) to overlay")
    p.add_argument("--segment", action="store_true",
                   help="run the default model once the study is open (the demo does)")
    p.add_argument("--confidence", action="store_true",
                   help="show the AI confidence overlay once segmented, at the largest "
                   "low-confidence region")
    p.add_argument("--measurements", action="store_true",
                   help="show the segment statistics and the first segment's RECIST axes")
    p.add_argument("--screenshot", metavar="OUT.png",
                   help="render, save the whole window to OUT.png and exit")
    p.add_argument("--size", default=None,
                   help="window size WIDTHxHEIGHT (default: as last time, or 1280x960)")
    return p


def _log_uncaught(log: logging.Logger) -> None:
    """Exceptions that escape a Qt slot go to ``medseg.log`` with their traceback (and on to
    the previous hook, which prints them), so support sees what the user saw."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        log.critical("uncaught exception", exc_info=(kind, exc, tb))
        previous(kind, exc, tb)

    if getattr(sys.excepthook, "_medseg", False):
        return
    hook._medseg = True  # type: ignore[attr-defined]
    sys.excepthook = hook


def main(argv: Sequence[str] | None = None) -> int:
    """Run the application; returns the exit status.

    With ``--screenshot`` the window is shown, the study loaded, the window saved as PNG and
    the process exits: 0 when the study loaded and the file was written, 1 otherwise (the error
    goes to stderr; no dialog blocks a headless run).
    """
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        width, height = (int(v) for v in (args.size or "1280x960").lower().split("x"))
    except ValueError:
        print(f"medseg-gui: --size must look like 1280x960, got {args.size!r}", file=sys.stderr)
        return 2
    log = setup_logging(verbose=bool(os.environ.get("MEDSEG_DEBUG")))
    log.info("medseg-gui started: %s", " ".join(sys.argv))
    _log_uncaught(log)
    existing = QApplication.instance()
    app = existing or QApplication([sys.argv[0] if sys.argv else "medseg-gui"])
    # Inside a running application (tests, embedding) run a local loop: quitting the
    # application itself would leave it unable to deliver queued signals afterwards.
    loop = QEventLoop() if existing is not None else app
    headless = args.screenshot is not None
    window = MainWindow(dialogs=not headless)
    if args.size or headless or not app_settings().contains("window/geometry"):
        window.resize(width, height)
    window.show()

    path, labels, segment = args.path, args.labels, args.segment
    if path is None and DEMO_STUDY.is_dir():
        path, segment = str(DEMO_STUDY), labels is None
    if path is None:
        window.statusBar().showMessage("No study given and no demo study found: use File > Open")
    action = window.segment_action
    if segment:  # the first study only
        window.studyLoaded.connect(lambda _v: action.start(),
                                   Qt.ConnectionType.SingleShotConnection)
    if args.confidence:  # the draft shows it as soon as it is applied
        window.confidence.action.setChecked(True)
        action.segmented.connect(lambda _s: window.confidence.table.selectRow(0),
                                 Qt.ConnectionType.SingleShotConnection)
    stats = window.segment_stats
    if args.measurements:
        stats.dock.raise_()
        stats.measured.connect(lambda: stats.go_to_recist(0),
                               Qt.ConnectionType.SingleShotConnection)

    status = {"rc": 0}
    if headless:
        out = Path(args.screenshot)

        def finish() -> None:
            # A shown study's segment surfaces and statistics are built in the background: wait
            # for them so the picture shows them (the timeout still applies).
            if window.view3d.building or stats.measuring:
                QTimer.singleShot(100, finish)
                return
            app.processEvents()
            window.render_all()
            if window.save_screenshot(out):
                shown = window.statusBar().currentMessage()
                print(f"medseg-gui: wrote {out}" + (f" ({shown})" if shown else ""))
            else:
                status["rc"] = 1
            loop.quit()

        def failed(message: str) -> None:
            print(f"medseg-gui: {message}", file=sys.stderr)
            status["rc"] = 1
            QTimer.singleShot(100, finish)

        def timed_out() -> None:
            if window.loading:
                window.cancel_loading()
                failed(f"loading took longer than {SCREENSHOT_TIMEOUT_S} s")
            elif action.running:
                action.cancel()
                failed(f"segmenting took longer than {SCREENSHOT_TIMEOUT_S} s")

        if segment:  # the picture shows the AI's draft
            action.segmented.connect(lambda _s: QTimer.singleShot(300, finish))
            action.refused.connect(lambda _m: QTimer.singleShot(300, finish))
            action.failed.connect(failed)
        else:
            window.studyLoaded.connect(lambda _v: QTimer.singleShot(300, finish))
        window.loadFailed.connect(failed)
        QTimer.singleShot(SCREENSHOT_TIMEOUT_S * 1000, timed_out)
        if path is None:
            QTimer.singleShot(300, finish)
    if path is not None:
        # Start loading once the event loop runs, so the window appears first.
        QTimer.singleShot(0, lambda: window.open_path(path, labels))
    rc = loop.exec()
    window.close()
    # Work still on the thread pool (a model loading, a cancelled job's last step) must end
    # before Python shuts down under it: its imports and signals would fail with tracebacks.
    QThreadPool.globalInstance().waitForDone(BACKGROUND_WAIT_MS)
    return status["rc"] if headless else int(rc)


if __name__ == "__main__":
    sys.exit(main())
