"""Persistent user settings: one INI file in :func:`medseg_gui.core.paths.config_dir`.

``QSettings(path, IniFormat)`` rather than the platform default (registry, plist) so that
``MEDSEG_HOME`` isolates tests and managed installs, and so the file can be read and reset by
hand. Keys are grouped by feature (``view/layout``, ``browser/recent``, ...).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

from medseg_gui.core.paths import config_dir

SETTINGS_FILE = "medseg-gui.ini"
MAX_RECENT = 10


def app_settings() -> QSettings:
    """The settings file of this user (a new handle each call; QSettings caches and syncs)."""
    return QSettings(str(config_dir() / SETTINGS_FILE), QSettings.Format.IniFormat)


def get_str(key: str, default: str = "") -> str:
    value = app_settings().value(key, default)
    return str(value) if value is not None else default


def set_value(key: str, value: object) -> None:
    s = app_settings()
    s.setValue(key, value)
    s.sync()


def recent_studies() -> list[str]:
    """Folders or files opened before, most recent first (missing ones are kept: a network
    share may just be offline)."""
    value = app_settings().value("browser/recent", [])
    if isinstance(value, str):  # QSettings returns a lone string for a one-item list
        value = [value]
    if not isinstance(value, list | tuple):
        return []
    return [str(v) for v in value if v]


def add_recent_study(path: str | Path) -> list[str]:
    """Put ``path`` first in the recent list (deduplicated, capped); returns the new list."""
    p = str(Path(path).resolve())
    items = [p] + [r for r in recent_studies() if r != p]
    items = items[:MAX_RECENT]
    set_value("browser/recent", items)
    set_value("browser/last_folder", str(Path(p).parent if Path(p).is_file() else p))
    return items


def clear_recent_studies() -> None:
    set_value("browser/recent", [])
