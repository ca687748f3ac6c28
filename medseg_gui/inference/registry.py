"""Model versions, the active version of each model, promotion and rollback.

The registry lives in ``inference`` because it decides which model runs: every place that runs
a model without naming its version (the GUI's "Segment tumour" and AI tool, ``medseg segment``,
``medseg prompt``) asks :func:`~medseg_gui.inference.models.resolve_model`, which asks the
registry; training only adds versions to it and promotes them.

Versions come from two places: shipped ones under ``engines/<model-id>/<version>/`` (read-only,
part of the install) and user-trained ones under ``data_dir()/models/<model-id>/<version>/``
(fine-tuning writes there). Each is a model folder with its card (:mod:`..inference.model_card`),
whose ``metrics["validation_dice"]["mean"]`` and ``training`` are the version's metrics and
provenance. A user version may not reuse a shipped ``id:version`` (the shipped one wins).

``data_dir()/models/registry.json`` holds, in one atomically replaced file, the active pointer of
each model id *and* the history of every switch: two files could disagree after a crash, one
cannot. Without a pointer the newest shipped version is active. Promotion refuses a version whose
mean validation Dice is below the active one's, or that was validated on other held-out cases
(a comparison across sets means nothing), unless forced. Rollback returns to the version active
before the last promotion that is still in effect; rolling back again goes further back.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medseg_gui.core.atomic import write_bytes
from medseg_gui.core.paths import data_dir
from medseg_gui.inference.model_card import ModelCard, list_models, load_card
from medseg_gui.inference.versions import version_key
from medseg_gui.io.errors import LoadError
from medseg_gui.resources import engines_dir

try:
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

STATE_FILE = "registry.json"


@dataclass(frozen=True)
class ModelVersion:
    """One version of a model: its card and where it comes from (``shipped`` or ``user``)."""

    card: ModelCard
    origin: str

    @property
    def model_id(self) -> str:
        return self.card.model_id

    @property
    def version(self) -> str:
        return self.card.version

    @property
    def ref(self) -> str:
        return self.card.ref

    @property
    def folder(self) -> Path:
        return self.card.folder

    @property
    def validation_dice(self) -> float | None:
        """Mean Dice on the held-out validation set, ``None`` when the card has none."""
        v = self.card.metrics.get("validation_dice")
        if isinstance(v, dict):
            v = v.get("mean")
        return float(v) if isinstance(v, int | float) else None

    @property
    def validation_cases(self) -> frozenset[str] | None:
        """The held-out case ids the Dice was measured on, when the card lists them."""
        v = self.card.metrics.get("validation_dice")
        per_case = v.get("per_case") if isinstance(v, dict) else None
        return frozenset(per_case) if isinstance(per_case, dict) else None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready summary: ref, origin, folder, metrics, provenance."""
        return {"ref": self.ref, "origin": self.origin, "folder": str(self.folder),
                "validation_dice": self.validation_dice, "metrics": self.card.metrics,
                "training": self.card.training}


class PromotionRefused(LoadError):
    """A promotion that would not be an improvement (or cannot be judged); ``--force`` overrides."""


class ModelRegistry:
    """Shipped and user-trained model versions with an active pointer per model id.

    Parameters
    ----------
    shipped
        Folder of shipped models (default: ``engines/`` of the install, or ``$MEDSEG_ENGINES``;
        see :mod:`medseg_gui.resources`).
    user
        Folder of user-trained models and of ``registry.json`` (default ``data_dir()/models``).
    """

    def __init__(self, shipped: str | Path | None = None, user: str | Path | None = None) -> None:
        self.shipped = Path(shipped) if shipped is not None else engines_dir()
        self.user = Path(user) if user is not None else data_dir() / "models"
        self.state_path = self.user / STATE_FILE

    # -- versions ----------------------------------------------------------------------------
    def versions(self, model_id: str | None = None) -> list[ModelVersion]:
        """All versions (of ``model_id``), by model id then :mod:`..inference.versions` order."""
        found: dict[str, ModelVersion] = {}
        for origin, folder in (("shipped", self.shipped), ("user", self.user)):
            for card in list_models(folder) if folder.is_dir() else []:
                if model_id in (None, card.model_id):
                    found.setdefault(card.ref, ModelVersion(card, origin))
        return sorted(found.values(), key=lambda v: (v.model_id, version_key(v.version)))

    def find(self, ref: str) -> ModelVersion:
        """The version ``"model-id:version"``; :class:`LoadError` when there is none."""
        model_id, sep, version = ref.partition(":")
        if not sep or not model_id or not version:
            raise LoadError(ref, "expected a model reference MODEL-ID:VERSION")
        for v in self.versions(model_id):
            if v.version == version:
                return v
        known = ", ".join(v.version for v in self.versions(model_id)) or "none"
        raise LoadError(ref, f"no such model version (versions of {model_id}: {known})")

    def active(self, model_id: str) -> ModelVersion | None:
        """The active version: the pointer's target, else the newest shipped version."""
        ref = self._state()["active"].get(model_id)
        if ref:
            with contextlib.suppress(LoadError):
                return self.find(ref)
        shipped = [v for v in self.versions(model_id) if v.origin == "shipped"]
        return shipped[-1] if shipped else None

    def history(self, model_id: str | None = None) -> list[dict[str, Any]]:
        """Every switch (oldest first): time, model_id, action, from, to, forced, Dice, reason."""
        events: list[dict[str, Any]] = self._state()["history"]
        return [e for e in events if model_id in (None, e["model_id"])]

    # -- switching ---------------------------------------------------------------------------
    def promote(self, ref: str, *, force: bool = False, reason: str = "") -> ModelVersion:
        """Make ``ref`` the active version of its model.

        Parameters
        ----------
        ref
            ``"model-id:version"``.
        force
            Promote even if its validation Dice is worse than the active version's, missing,
            or measured on other held-out cases.
        reason
            Free text recorded in the history.

        Raises
        ------
        PromotionRefused
            The candidate does not validate at least as well as the active version.
        LoadError
            Unknown version, or its files do not match its card.
        """
        cand = self.find(ref)
        load_card(cand.folder, verify=True)  # never point inference at a damaged model
        with self._locked():
            current = self.active(cand.model_id)
            if current is not None and current.ref == cand.ref:
                return cand
            problem = None if current is None else _worse(cand, current)
            if problem and not force:
                raise PromotionRefused(ref, f"{problem}; pass --force to promote anyway")
            self._switch(cand, current, "promote", bool(problem), reason)
        return cand

    def rollback(self, model_id: str, *, reason: str = "") -> ModelVersion:
        """Return ``model_id`` to the version active before the last promotion in effect.

        Raises
        ------
        LoadError
            Nothing to roll back to, or that version is gone or damaged.
        """
        with self._locked():
            stack = self._stack(model_id)
            if len(stack) < 2:
                raise LoadError(model_id, "no earlier version to roll back to")
            target = self.find(stack[-2])
            load_card(target.folder, verify=True)
            self._switch(target, self.active(model_id), "rollback", False, reason)
        return target

    def _stack(self, model_id: str) -> list[str]:
        """Replay the history: promotions push, rollbacks pop."""
        stack: list[str] = []
        for e in self.history(model_id):
            if e["action"] == "promote":
                if not stack and e["from"]:
                    stack.append(e["from"])
                stack.append(e["to"])
            elif stack:
                stack.pop()
        return stack

    def _switch(self, to: ModelVersion, frm: ModelVersion | None, action: str, forced: bool,
                reason: str) -> None:
        state = self._state()
        state["active"][to.model_id] = to.ref
        state["history"].append({
            "time": datetime.now(UTC).isoformat(timespec="seconds"), "model_id": to.model_id,
            "action": action, "from": frm.ref if frm else None, "to": to.ref, "forced": forced,
            "dice_from": frm.validation_dice if frm else None, "dice_to": to.validation_dice,
            "reason": reason,
        })
        write_bytes(self.state_path, json.dumps(state, indent=2).encode(), durable=True)

    def _state(self) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads(self.state_path.read_text("utf-8"))
        except FileNotFoundError:
            return {"schema": 1, "active": {}, "history": []}
        except ValueError as exc:
            raise LoadError(self.state_path, f"damaged model registry ({exc})") from exc
        return state

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise read-modify-write of ``registry.json`` between processes."""
        self.user.mkdir(parents=True, exist_ok=True)
        with open(self.user / ".lock", "a+b") as f:
            if fcntl is not None:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            yield


def _worse(cand: ModelVersion, current: ModelVersion) -> str | None:
    """Why ``cand`` may not replace ``current`` (``None`` when it may)."""
    new, old = cand.validation_dice, current.validation_dice
    if old is None:
        return None
    if new is None:
        return f"{cand.ref} has no validation Dice to compare with {current.ref} ({old:.4f})"
    if None not in (cand.validation_cases, current.validation_cases) and \
            cand.validation_cases != current.validation_cases:
        return f"{cand.ref} was validated on other held-out cases than {current.ref}"
    if new < old:
        return (f"validation Dice of {cand.ref} ({new:.4f}) is worse than that of the active "
                f"{current.ref} ({old:.4f})")
    return None
