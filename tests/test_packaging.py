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


def test_frozen_dash_m_passes_the_exit_status() -> None:
    script = ("import sys; sys.path.insert(0, 'packaging/pyinstaller'); "
              "sys.argv = ['medseg', '-m', 'medseg_gui.cli', 'no-such-command']; "
              "from frozen_main import run; run('cli')")
    res = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2, res.stderr


def test_spec_names_both_executables_and_the_data() -> None:
    spec = (ROOT / "packaging" / "medseg-gui.spec").read_text()
    compile(spec, "medseg-gui.spec", "exec")  # PyInstaller's globals are only needed to run it
    for name in ('"medseg-gui"', '"medseg"', 'tree("resources")', 'tree("engines")',
                 "__main__.py", 'NAME = f"medseg-gui-{VERSION}"'):
        assert name in spec
    for script in ("launch_gui.py", "launch_cli.py", "frozen_main.py"):
        assert (ROOT / "packaging" / "pyinstaller" / script).is_file()
    # The demo study must ship with its licence and credits.
    assert (resources.RESOURCES / "demo" / "LICENSE.md").is_file()
    assert (resources.RESOURCES / "demo" / "README.md").is_file()


@pytest.mark.skipif(sys.platform != "linux", reason="the installer is for Linux desktops")
def test_install_script_user_mode(tmp_path: Path) -> None:
    # A stand-in bundle: the installer only copies it, links the executables, adds the menu entry.
    bundle = tmp_path / "dist" / "medseg-gui-9.9.9"
    bundle.mkdir(parents=True)
    for exe in ("medseg-gui", "medseg"):
        (bundle / exe).write_text("#!/bin/sh\necho ok\n")
        (bundle / exe).chmod(0o755)
    (bundle / "VERSION").write_text("9.9.9\n")
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "XDG_DATA_HOME": str(home / "share")}
    script = ROOT / "packaging" / "linux" / "install.sh"
    res = subprocess.run(["bash", str(script), "--user", str(bundle)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    dest = home / ".local" / "opt" / "medseg-gui-9.9.9"
    assert (home / ".local" / "bin" / "medseg-gui").resolve() == dest / "medseg-gui"
    assert (home / ".local" / "bin" / "medseg").resolve() == dest / "medseg"
    entry = (home / "share" / "applications" / "medseg-gui.desktop").read_text()
    assert f"Exec={dest}/medseg-gui %f" in entry
    assert (home / "share" / "icons" / "hicolor" / "scalable" / "apps" / "medseg-gui.svg").is_file()

    res = subprocess.run(["bash", str(script), "--user", "--uninstall", str(dest)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert not dest.exists()
    assert not (home / ".local" / "bin" / "medseg-gui").is_symlink()
    assert not (home / "share" / "applications" / "medseg-gui.desktop").exists()
