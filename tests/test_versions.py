"""One version order: fine-tunes after their base, pre-releases before, local labels after."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from medseg_gui.inference.models import resolve_model
from medseg_gui.inference.registry import ModelRegistry
from medseg_gui.inference.versions import version_key
from tests.test_registry import _model

ORDER = [  # oldest first
    "1.0.0", "1.1.0-beta2", "1.1.0-rc1", "1.1.0-rc2", "1.1.0-rc10", "1.1.0", "1.1.0+local",
    "1.1.0+local.2", "1.1.0_ft1", "1.1.0_ft2-rc1", "1.1.0_ft2", "1.1.0_ft2+gpu", "1.1.0_ft10",
    "1.1.0-ft.20250101120000", "1.1.0-ft.20250102080000", "1.1.1-rc1", "1.1.1", "1.2.0",
    "1.10.0",
]


def test_the_documented_order() -> None:
    shuffled = ORDER[:]
    random.Random(20).shuffle(shuffled)
    assert sorted(shuffled, key=version_key) == ORDER


@pytest.mark.parametrize(("older", "newer"), [
    ("1.1.0", "1.1.0_ft2"),  # the two old keys disagreed on this pair
    ("1.1.0_ft2", "1.1.1"),
    ("1.1.0-rc1", "1.1.0"),  # the two old keys both put the candidate after the release
    ("1.1.0", "1.1.0+local"),
    ("1.1.0+local", "1.1.0_ft1"),
    ("1.9.0", "1.10.0"),
    ("1.1.0-ft.9", "1.1.0-ft.10"),
])
def test_pairs(older: str, newer: str) -> None:
    assert version_key(older) < version_key(newer)


def test_a_total_order() -> None:
    same_place = ["1.1.0_ft2", "1.1.0-ft.2", "1.1.0-ft2"]
    assert len({version_key(v) for v in same_place}) == 3
    assert sorted(same_place, key=version_key) == sorted(same_place)


@pytest.mark.parametrize("versions", [
    ["1.1.0", "1.1.0_ft2"],
    ["1.1.0", "1.1.1-rc1", "1.1.0+local"],
    ["1.1.0-rc1", "1.0.0", "1.1.0-rc2"],
    ["1.1.0", "1.1.0-ft.20250101120000", "1.1.0_ft3", "1.1.1-rc1"],
])
def test_resolver_and_registry_agree_on_the_newest(tmp_path: Path, versions: list[str]) -> None:
    engines = tmp_path / "engines"
    for version in versions:
        _model(engines, version, 0.7)
    newest = max(versions, key=version_key)
    registry = ModelRegistry(shipped=engines, user=tmp_path / "user")
    assert resolve_model("sts-tumour", folder=engines).version == newest
    active = registry.active("sts-tumour")
    assert active is not None and active.version == newest
    assert [v.version for v in registry.versions("sts-tumour")] == sorted(versions,
                                                                          key=version_key)
