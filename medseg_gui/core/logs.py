"""Logging set-up shared by the CLI and the GUI.

Library chatter (pydicom's warnings about odd headers, VTK and ITK notices) goes to a log file in
the user's log folder, not to the terminal: users see one clear line per problem, and support
engineers find the details in ``medseg.log``.
"""

from __future__ import annotations

import logging
import logging.handlers
import warnings
from pathlib import Path

from medseg_gui.core.paths import log_dir


def setup_logging(verbose: bool = False) -> logging.Logger:
    """Send all logging and Python warnings to ``<logs>/medseg.log`` (rotated at 5 MB)."""
    root = logging.getLogger()
    path = log_dir() / "medseg.log"
    for h in [h for h in root.handlers if getattr(h, "_medseg", False)]:
        if Path(getattr(h, "baseFilename", "")) != path.resolve():  # another home since
            root.removeHandler(h)
            h.close()
    if not any(getattr(h, "_medseg", False) for h in root.handlers):
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=5_000_000, backupCount=3, encoding="utf-8"
        )
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._medseg = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    # pydicom logs every odd header element at WARNING; keep it in the file only.
    logging.getLogger("pydicom").propagate = True
    for h in logging.getLogger("pydicom").handlers[:]:
        logging.getLogger("pydicom").removeHandler(h)
    return logging.getLogger("medseg")
