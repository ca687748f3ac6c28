"""Where the files shipped with the app live: ``resources/`` and ``engines/``.

``resources/`` holds the demo study, presets and colour tables; ``engines/`` the shipped model
folders (``engines/<model-id>/<version>/``: ONNX, weights, model card). Every other module takes
these paths from here and never builds them from its own ``__file__``.

Where they are found, first match wins:

1. ``MEDSEG_RESOURCES`` / ``MEDSEG_ENGINES`` when set (a container or a managed install that keeps
   its models on a shared volume);
2. in a frozen PyInstaller bundle (``sys.frozen``): the bundle's data folder ``sys._MEIPASS``, i.e.
   ``_internal/`` beside the ``medseg-gui`` and ``medseg`` executables of the one-folder build;
3. otherwise beside the package, in the repository root of a checkout (or an editable install).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def install_root() -> Path:
    """The folder that holds ``resources/`` and ``engines/`` for this way of running the app."""
    if getattr(sys, "frozen", False):
        meipass = getattr(sys, "_MEIPASS", None)
        # _MEIPASS is always set by PyInstaller's bootloader; other freezers only set frozen.
        return Path(meipass) if meipass else Path(sys.executable).resolve().parent
    return Path(__file__).resolve().parent.parent


def _from_env(name: str, default: Path) -> Path:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else default


def resources_dir() -> Path:
    """``resources/``, looking at ``MEDSEG_RESOURCES`` now (the constants read it at import)."""
    return _from_env("MEDSEG_RESOURCES", install_root() / "resources")


def engines_dir() -> Path:
    """``engines/``, looking at ``MEDSEG_ENGINES`` now (the constants read it at import)."""
    return _from_env("MEDSEG_ENGINES", install_root() / "engines")


ROOT = install_root()
RESOURCES = resources_dir()
ENGINES = engines_dir()
DEMO_STUDY = RESOURCES / "demo" / "STS_008" / "dicom" / "image"
DEMO_RTSTRUCT = RESOURCES / "demo" / "STS_008" / "dicom" / "mask" / "RS.dcm"
DEMO_MASK = RESOURCES / "demo" / "STS_008" / "gtv_mask.nii.gz"
