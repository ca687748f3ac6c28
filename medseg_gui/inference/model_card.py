"""Model cards: what a model folder under ``engines/<model-id>/<version>/`` holds and promises.

A model folder holds ``model.json`` (this card), the ONNX graph the inference backends run and the
weights (safetensors) fine-tuning starts from. The card records everything inference needs to
reproduce the training-time preprocessing (spacing, orientation, intensity normalisation, window
size, overlap, blending), the labels with coded concepts, and provenance (training data, command,
metrics). Loading verifies the SHA-256 of the ONNX and weights files and refuses a mismatch, so a
half-copied or swapped file is never run on a patient. A promptable model's card also has a
``prompt`` section (its input channels, crop and AutoZoom settings); its ONNX graph then takes
those channels and any crop size that is a multiple of the network's total stride. An automatic
model's card may state its ``intended_use`` (modality, body region, ranges seen in training and
the limits :mod:`~medseg_gui.inference.guard` checks a study and a result against).

Axis conventions: ``spacing`` is in ``(i, j, k)`` order like :class:`~medseg_gui.core.Geometry`;
``roi_size`` is in array order ``(k, j, i)``, which is the network's ``(D, H, W)``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from medseg_gui.core.atomic import write_bytes
from medseg_gui.core.review import Review, ReviewStatus
from medseg_gui.core.segmentation import CodedConcept, Segment, SegmentSource
from medseg_gui.io.errors import LoadError

CARD_NAME = "model.json"
SCHEMA = 1


@dataclass(frozen=True)
class Normalisation:
    """Intensity normalisation: clip to ``[low, high]`` then ``(x - mean) / std``.

    The one implementation of it: training, validation, fine-tuning and both inference pipelines
    call :meth:`apply`, and pad with :attr:`pad_value`.
    """

    low: float = -1000.0
    high: float = 1000.0
    mean: float = 0.0
    std: float = 1000.0

    def apply(self, array: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """``array`` (HU) clipped and normalised, computed in float32.

        Parameters
        ----------
        array
            Intensities in HU, any shape and numeric dtype.

        Returns
        -------
        numpy.ndarray
            A new float32 array of the same shape.
        """
        x = np.clip(np.asarray(array, dtype=np.float32), self.low, self.high)
        out: npt.NDArray[np.float32] = (x - np.float32(self.mean)) / np.float32(self.std)
        return out.astype(np.float32, copy=False)

    @property
    def pad_value(self) -> float:
        """``low`` normalised: what a window reaching past the image is filled with (air)."""
        return (self.low - self.mean) / self.std


@dataclass(frozen=True)
class LabelInfo:
    """One output label of the model (value in the thresholded mask)."""

    value: int
    name: str
    color: tuple[int, int, int]
    category: CodedConcept
    type: CodedConcept


@dataclass
class ModelCard:
    """The contents of ``model.json``; ``folder`` is where it was read from (not stored)."""

    model_id: str
    version: str
    architecture: dict[str, Any]
    spacing: tuple[float, float, float]
    roi_size: tuple[int, int, int]
    labels: list[LabelInfo]
    onnx_file: str = "model.onnx"
    onnx_sha256: str = ""
    weights_file: str = "weights.safetensors"
    weights_sha256: str = ""
    orientation: str = "LPS"
    normalisation: Normalisation = field(default_factory=Normalisation)
    overlap: float = 0.5
    blend: Literal["gaussian", "constant"] = "gaussian"
    threshold: float = 0.5
    onnx_input: str = "image"
    onnx_output: str = "tumour_probability"
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    prompt: dict[str, Any] = field(default_factory=dict)
    intended_use: dict[str, Any] = field(default_factory=dict)
    folder: Path = field(default=Path("."), compare=False)

    @property
    def ref(self) -> str:
        """``"model-id:version"``, recorded in every segment the model draws."""
        return f"{self.model_id}:{self.version}"

    @property
    def promptable(self) -> bool:
        """Whether this is a promptable model (its card has a ``prompt`` section: channels,
        crop and zoom, see :class:`~medseg_gui.inference.prompt_encoding.PromptConfig`)."""
        return bool(self.prompt)

    @property
    def onnx_path(self) -> Path:
        return self.folder / self.onnx_file

    @property
    def weights_path(self) -> Path:
        return self.folder / self.weights_file

    def segments(self) -> list[Segment]:
        """The segment table of a mask this model draws: AI drafts, not yet reviewed."""
        draft = Review.now(ReviewStatus.DRAFT)
        return [
            Segment(lb.value, lb.name, lb.color, lb.category, lb.type,
                    SegmentSource.AUTOMATIC, self.ref, draft)
            for lb in self.labels
        ]

    # -- (de)serialisation -----------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("folder")
        d["schema"] = SCHEMA
        return d

    @staticmethod
    def from_json(d: dict[str, Any], folder: Path) -> ModelCard:
        if d.get("schema") != SCHEMA:
            raise ValueError(f"unsupported model card schema {d.get('schema')!r}")
        d = {k: v for k, v in d.items() if k != "schema"}
        d["spacing"] = tuple(float(v) for v in d["spacing"])
        d["roi_size"] = tuple(int(v) for v in d["roi_size"])
        d["normalisation"] = Normalisation(**d.get("normalisation", {}))
        d["labels"] = [
            LabelInfo(int(lb["value"]), str(lb["name"]), tuple(lb["color"]),
                      CodedConcept(**lb["category"]), CodedConcept(**lb["type"]))
            for lb in d["labels"]
        ]
        return ModelCard(**d, folder=folder)

    def save(self, folder: str | Path | None = None) -> Path:
        """Write ``model.json`` atomically into ``folder`` (default: the card's own folder)."""
        target = Path(folder) if folder is not None else self.folder
        target.mkdir(parents=True, exist_ok=True)
        self.folder = target
        return write_bytes(target / CARD_NAME,
                           (json.dumps(self.to_json(), indent=2) + "\n").encode("utf-8"))

    def update_hashes(self) -> None:
        """Record the SHA-256 of the ONNX and weights files now in the folder."""
        self.onnx_sha256 = sha256_file(self.onnx_path)
        self.weights_sha256 = sha256_file(self.weights_path)

    def verify(self, *, weights: bool = False) -> None:
        """Raise :class:`LoadError` unless the ONNX (and optionally weights) match the card."""
        checks = [(self.onnx_path, self.onnx_sha256)]
        if weights:
            checks.append((self.weights_path, self.weights_sha256))
        for path, expected in checks:
            if not path.is_file():
                raise LoadError(path, f"missing file of model {self.ref}")
            actual = sha256_file(path)
            if actual != expected:
                raise LoadError(
                    path,
                    f"SHA-256 {actual[:12]}... does not match model card {self.ref} "
                    f"({expected[:12]}...): the file was changed or damaged; refusing to run it",
                )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def load_card(folder: str | Path, *, verify: bool = True) -> ModelCard:
    """Read ``folder/model.json``; with ``verify`` check the ONNX file's hash.

    Raises
    ------
    LoadError
        Missing or malformed card, or a file that does not match its recorded hash.
    """
    path = Path(folder) / CARD_NAME
    try:
        card = ModelCard.from_json(json.loads(path.read_text(encoding="utf-8")), Path(folder))
    except FileNotFoundError as exc:
        raise LoadError(path, "no model card (model.json) in this folder") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise LoadError(path, f"malformed model card: {exc}") from exc
    if verify:
        card.verify()
    return card


def list_models(engines_dir: str | Path) -> list[ModelCard]:
    """Every model card under ``engines_dir/<model-id>/<version>/`` (unverified), sorted."""
    cards = []
    for card_path in sorted(Path(engines_dir).glob(f"*/*/{CARD_NAME}")):
        try:
            cards.append(load_card(card_path.parent, verify=False))
        except LoadError:
            continue
    return cards
