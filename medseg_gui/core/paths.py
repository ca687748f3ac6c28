"""Where user data, caches, logs and settings live.

The platform's usual folders (platformdirs), or, when the environment variable ``MEDSEG_HOME``
is set, subfolders ``data``, ``cache``, ``logs`` and ``config`` of that one folder (tests and
managed installs use it so that nothing is written elsewhere).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "medseg-gui"


def _home() -> Path | None:
    home = os.environ.get("MEDSEG_HOME", "").strip()
    return Path(home).expanduser() if home else None


def _folder(kind: str) -> Path:
    home = _home()
    if home is not None:
        path = home / kind
    else:
        path = Path(
            {
                "data": platformdirs.user_data_dir,
                "cache": platformdirs.user_cache_dir,
                "logs": platformdirs.user_log_dir,
                "config": platformdirs.user_config_dir,
            }[kind](APP_NAME, appauthor=False)
        )
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """User data: the training queue, the model registry, session journals."""
    return _folder("data")


def cache_dir() -> Path:
    """Rebuildable files: TensorRT plans, thumbnails, DICOM indexes."""
    return _folder("cache")


def log_dir() -> Path:
    return _folder("logs")


def config_dir() -> Path:
    """Settings (QSettings writes its INI file here)."""
    return _folder("config")
