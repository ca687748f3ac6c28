"""Find a model folder from ``ID[:VERSION]`` (or a path) under the engines folder."""

from __future__ import annotations

from pathlib import Path

from medseg_gui import resources
from medseg_gui.inference.model_card import ModelCard, list_models, load_card
from medseg_gui.inference.versions import version_key
from medseg_gui.io.errors import LoadError

DEFAULT_MODEL = "sts-tumour-unet"
DEFAULT_PROMPT_MODEL = "prompt-unet"  # the promptable model of the AI tool and medseg prompt


def engines_dir() -> Path:
    """``$MEDSEG_ENGINES``, else ``engines/`` of the checkout or of the frozen bundle."""
    return resources.engines_dir()


def resolve_model(spec: str | None = None, folder: str | Path | None = None) -> ModelCard:
    """The verified card for ``spec``: ``ID``, ``ID:VERSION`` or a model folder's path.

    Without a version the newest one is taken, in the order of :mod:`.versions` (the registry's
    order too). Raises :class:`LoadError` naming what exists.
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
    best = max(cards, key=lambda c: version_key(c.version))
    return load_card(best.folder)
