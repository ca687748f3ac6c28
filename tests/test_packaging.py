"""Packaging logic that can be checked without building the bundle (the build itself is
``make package``, which builds with PyInstaller and runs packaging/smoke_test.sh)."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

from medseg_gui import resources

ROOT = Path(__file__).resolve().parent.parent


def test_checkout_layout_is_found() -> None:
    assert resources.install_root() == ROOT
    assert (resources.DEMO_STUDY / "000002.dcm").is_file() or any(resources.DEMO_STUDY.iterdir())
    assert (resources.engines_dir() / "sts-tumour-unet").is_dir()


def test_frozen_bundle_uses_its_data_folder(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path / "_internal"), raising=False)
    assert resources.install_root() == tmp_path / "_internal"
    assert resources.resources_dir() == tmp_path / "_internal" / "resources"
    assert resources.engines_dir() == tmp_path / "_internal" / "engines"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MEDSEG_ENGINES", str(tmp_path / "models"))
    monkeypatch.setenv("MEDSEG_RESOURCES", str(tmp_path / "res"))
    assert resources.engines_dir() == tmp_path / "models"
    assert resources.resources_dir() == tmp_path / "res"


def test_desktop_entry() -> None:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]
    entry.read(ROOT / "packaging" / "linux" / "medseg-gui.desktop")
    desktop = entry["Desktop Entry"]
    assert desktop["Type"] == "Application"
    assert desktop["Exec"].startswith("medseg-gui")
    assert desktop["Icon"] == "medseg-gui"
    assert "application/dicom" in desktop["MimeType"]
    assert (ROOT / "packaging" / "linux" / "medseg-gui.svg").is_file()


def test_frozen_executables_accept_dash_m() -> None:
    # Jobs start `sys.executable -m medseg_gui.training ...`; in the bundle sys.executable is the
    # app's executable, whose launcher must dispatch -m like Python does.
    script = ("import sys; sys.path.insert(0, 'packaging/pyinstaller'); "
              "sys.argv = ['medseg', '-m', 'medseg_gui.cli', '--version']; "
              "from frozen_main import run; run('cli')")
    res = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("medseg ")
