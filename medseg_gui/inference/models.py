"""Find a model folder from ``ID[:VERSION]`` (or a path): the registry's active version, or one
under the engines folder."""

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

    ``ID`` alone is the registry's active version of that model
    (:meth:`~medseg_gui.inference.registry.ModelRegistry.active`: the promoted one, a fine-tune
    of the site's corrections included, else the newest shipped version), so the GUI and every
    command run the same version; ``ID:VERSION`` may name a shipped or a user-trained version.
    With ``folder``, only that folder is searched, and ``ID`` is its newest version in the order
    of :mod:`.versions`. Raises :class:`LoadError` naming what exists.
    """
    spec = spec or DEFAULT_MODEL
    as_path = Path(spec)
    if (as_path / "model.json").is_file():
        return load_card(as_path)
    model_id, _, version = spec.partition(":")
    if folder is None:  # shipped and user-trained versions, through the one registry
        from medseg_gui.inference.registry import ModelRegistry

        registry = ModelRegistry()
        found = (registry.active(model_id) if not version else
                 next((v for v in registry.versions(model_id) if v.version == version), None))
        if found is not None:
            return load_card(found.folder)
    root = Path(folder) if folder is not None else engines_dir()
    cards = [c for c in list_models(root) if c.model_id == model_id]
    if version:
        cards = [c for c in cards if c.version == version]
    if not cards:
        known = ", ".join(c.ref for c in list_models(root)) or "none"
        raise LoadError(root, f"no model {spec!r} here (models found: {known})")
    best = max(cards, key=lambda c: version_key(c.version))
    return load_card(best.folder)
