"""Model registry: versions, promotion refused on a worse model, forced promotion, rollback."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from medseg_gui.core.paths import data_dir
from medseg_gui.inference.model_card import ModelCard
from medseg_gui.inference.registry import ModelRegistry, PromotionRefused
from medseg_gui.io.errors import LoadError
from medseg_gui.training.queue_commands import add_commands

CASES = {"STS_001": 0.8, "STS_002": 0.7}


def _model(root: Path, version: str, dice: float | None, cases: dict[str, float] | None = None,
           model_id: str = "sts-tumour") -> Path:
    folder = root / model_id / version
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(f"onnx {version}".encode())
    (folder / "weights.safetensors").write_bytes(f"weights {version}".encode())
    metrics = {} if dice is None else {
        "validation_dice": {"mean": dice, "per_case": cases if cases is not None else CASES}}
    card = ModelCard(model_id, version, {"name": "unet"}, (1.0, 1.0, 3.0), (32, 64, 64), [],
                     metrics=metrics, training={"from": "test"}, folder=folder)
    card.update_hashes()
    card.save()
    return folder


@pytest.fixture
def reg(tmp_path: Path) -> ModelRegistry:
    shipped = tmp_path / "engines"
    _model(shipped, "1.0.0", 0.70)
    user = data_dir() / "models"
    _model(user, "1.1.0", 0.75)
    _model(user, "1.10.0", 0.72)
    _model(user, "1.2.0", 0.80)
    _model(user, "1.3.0", None)
    _model(user, "1.4.0", 0.90, {"STS_009": 0.9})
    return ModelRegistry(shipped=shipped)


def test_versions_and_default_active(reg: ModelRegistry) -> None:
    refs = [v.ref.split(":")[1] for v in reg.versions("sts-tumour")]
    assert refs == ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0", "1.10.0"]
    v = reg.find("sts-tumour:1.0.0")
    assert v.origin == "shipped" and v.validation_dice == 0.70
    assert v.to_json()["training"] == {"from": "test"}
    assert reg.active("sts-tumour") == v  # no pointer yet: the newest shipped version
    assert reg.active("other") is None and reg.versions("other") == []
    with pytest.raises(LoadError, match="versions of sts-tumour"):
        reg.find("sts-tumour:9.9")


def test_promote_refuses_worse_and_rollback(reg: ModelRegistry) -> None:
    reg.promote("sts-tumour:1.1.0")
    assert reg.active("sts-tumour").ref == "sts-tumour:1.1.0"  # type: ignore[union-attr]
    with pytest.raises(PromotionRefused, match=r"0\.7200\) is worse .*0\.7500"):
        reg.promote("sts-tumour:1.10.0")
    with pytest.raises(PromotionRefused, match="no validation Dice"):
        reg.promote("sts-tumour:1.3.0")
    with pytest.raises(PromotionRefused, match="other held-out cases"):
        reg.promote("sts-tumour:1.4.0")
    assert reg.active("sts-tumour").ref == "sts-tumour:1.1.0"  # type: ignore[union-attr]
    reg.promote("sts-tumour:1.2.0", reason="fine-tune 2")
    reg.promote("sts-tumour:1.10.0", force=True)
    # a fresh registry object (another process) sees the same state
    again = ModelRegistry(shipped=reg.shipped)
    assert again.active("sts-tumour").ref == "sts-tumour:1.10.0"  # type: ignore[union-attr]
    hist = again.history("sts-tumour")
    assert [(h["action"], h["from"], h["to"], h["forced"]) for h in hist] == [
        ("promote", "sts-tumour:1.0.0", "sts-tumour:1.1.0", False),
        ("promote", "sts-tumour:1.1.0", "sts-tumour:1.2.0", False),
        ("promote", "sts-tumour:1.2.0", "sts-tumour:1.10.0", True),
    ]
    assert hist[1]["reason"] == "fine-tune 2" and hist[1]["dice_to"] == 0.80
    assert again.rollback("sts-tumour").version == "1.2.0"
    assert again.rollback("sts-tumour").version == "1.1.0"
    assert again.rollback("sts-tumour").version == "1.0.0"
    with pytest.raises(LoadError, match="no earlier version"):
        again.rollback("sts-tumour")
    assert [h["action"] for h in again.history()][-3:] == ["rollback"] * 3
    assert sorted(p.name for p in again.user.iterdir() if p.is_file()) == [".lock",
                                                                           "registry.json"]


def test_promote_refuses_damaged_model(reg: ModelRegistry) -> None:
    (reg.find("sts-tumour:1.2.0").folder / "model.onnx").write_bytes(b"swapped")
    with pytest.raises(LoadError, match="does not match model card"):
        reg.promote("sts-tumour:1.2.0")
    assert reg.history() == []


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="medseg")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_models_cli(reg: ModelRegistry, monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MEDSEG_ENGINES", str(reg.shipped))
    assert _cli(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "* sts-tumour:1.0.0" in out and "6 version(s)" in out
    assert _cli(["models", "promote", "sts-tumour:1.2.0"]) == 0
    with pytest.raises(PromotionRefused):
        _cli(["models", "promote", "sts-tumour:1.1.0"])
    assert _cli(["models", "promote", "sts-tumour:1.1.0", "--force"]) == 0
    assert _cli(["models", "rollback", "sts-tumour"]) == 0
    assert "active version is now 1.2.0" in capsys.readouterr().out
    assert _cli(["models", "list", "sts-tumour", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 6 and rows[0]["validation_dice"] == 0.70


def test_every_runner_resolves_the_registry_s_active_version(reg: ModelRegistry,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """Segment tumour, the AI tool, ``medseg segment`` and ``medseg prompt`` all ask
    ``resolve_model``: a promotion (a fine-tune of the site's corrections) reaches every one of
    them, and a rollback too; a version named explicitly wins, user-trained ones included."""
    from medseg_gui.inference.models import resolve_model

    monkeypatch.setenv("MEDSEG_ENGINES", str(reg.shipped))
    assert resolve_model("sts-tumour").ref == "sts-tumour:1.0.0"  # no pointer: newest shipped
    reg.promote("sts-tumour:1.2.0")
    assert resolve_model("sts-tumour").ref == "sts-tumour:1.2.0"
    assert resolve_model("sts-tumour:1.1.0").folder == reg.find("sts-tumour:1.1.0").folder
    reg.rollback("sts-tumour")
    assert resolve_model("sts-tumour").ref == "sts-tumour:1.0.0"
    with pytest.raises(LoadError, match=r"models found: sts-tumour:1\.0\.0"):
        resolve_model("sts-tumour:7.0.0")
