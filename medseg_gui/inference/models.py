"""Find a model folder from ``ID[:VERSION]`` (or a path) under the engines folder."""

from __future__ import annotations

import re
from pathlib import Path

from medseg_gui import resources
from medseg_gui.inference.model_card import ModelCard, list_models, load_card
from medseg_gui.io.errors import LoadError

DEFAULT_MODEL = "sts-tumour-unet"
DEFAULT_PROMPT_MODEL = "prompt-unet"  # the promptable model of the AI tool and medseg prompt


def engines_dir() -> Path:
    """``$MEDSEG_ENGINES``, else ``engines/`` of the checkout or of the frozen bundle."""
    return resources.engines_dir()


def _version_key(version: str) -> tuple[tuple[int, str], ...]:
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"[.\-+]", version))


def resolve_model(spec: str | None = None, folder: str | Path | None = None) -> ModelCard:
    """The verified card for ``spec``: ``ID``, ``ID:VERSION`` or a model folder's path.

    Without a version the highest one is taken. Raises :class:`LoadError` naming what exists.
    """
    spec = spec or DEFAULT_MODEL
    as_path = Path(spec)
    if (as_path / "model.json").is_file():
        return load_card(as_path)
    root = Path(folder) if folder is not None else engines_dir()
    model_id, _, version = spec.partition(":")
    cards = [c for c in list_models(root) if c.model_id == model_id]
    if version:
        cards = [c for c in cards if c.version == version]
    if not cards:
        known = ", ".join(c.ref for c in list_models(root)) or "none"
        raise LoadError(root, f"no model {spec!r} here (models found: {known})")
    best = max(cards, key=lambda c: _version_key(c.version))
    return load_card(best.folder)
