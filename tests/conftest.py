"""Shared fixtures: the real data folder, an isolated MEDSEG_HOME for every test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _shared_data_dir() -> Path | None:
    env = os.environ.get("MEDSEG_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates += [ROOT.parent / "shared" / "data", ROOT / "shared" / "data"]
    return next((p for p in candidates if (p / "README.md").is_file()), None)


SHARED_DATA = _shared_data_dir()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or $MEDSEG_SHARED_DATA). CI must have it: there, absence is an error."""
    if SHARED_DATA is None:
        if os.environ.get("CI"):
            pytest.fail("../shared/data is missing in CI; set MEDSEG_SHARED_DATA")
        pytest.skip("the shared real-data folder (../shared/data) is not present")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def medseg_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test writes user data, caches and settings under its own MEDSEG_HOME."""
    home = tmp_path_factory.mktemp("medseg_home")
    monkeypatch.setenv("MEDSEG_HOME", str(home))
    return home
