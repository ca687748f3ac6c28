"""What a training run is asked to do: :class:`TrainConfig` and the architecture it builds."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medseg_gui.inference.model_card import Normalisation

if TYPE_CHECKING:  # sampling imports MONAI; the CLI reads this module for its defaults
    from medseg_gui.training.sampling import Recipe

# Soft-tissue sarcoma CT: tumour 1st-99th percentile about -50..150 HU (median ~30) in the IBSI set,
# fat about -100, muscle about 40. Below -200 is air or lung, above 300 bone, calcification or
# dense contrast, which the network only needs to see as "very bright". The window maps to [-1, 1].
DEFAULT_NORMALISATION = Normalisation(low=-200.0, high=300.0, mean=50.0, std=250.0)


@dataclass
class TrainConfig:
    """Every knob of ``medseg train``; stored in checkpoints and (summarised) in the model card.

    ``spacing`` is (i, j, k) mm; ``roi`` is array order (k, j, i) = network (D, H, W).
    ``val_every`` steps (0: never) the validation cases are scored and logged; ``select``
    ``"best"`` ships the weights with the best mean validation Dice (which makes that Dice an
    optimistic estimate), ``"last"`` the final ones.
    ``steps`` is the most optimizer steps; with ``minutes`` the run measures its speed after a
    warm-up and lowers the step count so that training fits in that many minutes (the learning-
    rate schedule then follows the new count, and the card records the steps actually run).
    """

    data: str
    out: str
    work: str = ""
    model_id: str = "sts-tumour-unet"
    version: str = "1.0.0"
    spacing: tuple[float, float, float] = (1.0, 1.0, 3.0)
    roi: tuple[int, int, int] = (32, 128, 128)
    channels: tuple[int, ...] = (16, 32, 64, 128, 128)
    res_units: int = 2
    normalisation: Normalisation = DEFAULT_NORMALISATION
    steps: int = 2000
    minutes: float = 0.0
    warmup_steps: int = 50
    cases_per_batch: int = 2
    samples_per_case: int = 4
    neg_ratio: float = 1.0
    bg_min_hu: float | None = None
    zoom: tuple[float, float] | None = None
    lr: float = 1e-3
    weight_decay: float = 1e-5
    seed: int = 12345
    val_fraction: float = 0.2
    force_validation: tuple[str, ...] = ("STS_008",)
    workers: int = 4
    checkpoint_every: int = 250
    val_every: int = 0
    select: str = "last"
    log_every: int = 25
    resume: bool = False
    device: str = "auto"
    amp: bool = True
    overlap: float = 0.5
    blend: str = "gaussian"
    threshold: float = 0.5
    command: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def work_dir(self) -> Path:
        if self.work:
            return Path(self.work)
        from medseg_gui.core.paths import cache_dir

        return cache_dir() / "training" / f"{self.model_id}-{self.version}"

    @property
    def recipe(self) -> Recipe:
        from medseg_gui.training.sampling import Recipe

        return Recipe(self.neg_ratio, self.bg_min_hu, self.zoom)

    def architecture(self) -> dict[str, Any]:
        """The card's ``architecture``: a MONAI ``UNet`` with instance normalisation."""
        return {
            "name": "UNet",
            "params": {
                "spatial_dims": 3, "in_channels": 1, "out_channels": 2,
                "channels": list(self.channels), "strides": [2] * (len(self.channels) - 1),
                "num_res_units": self.res_units, "norm": "instance",
            },
        }

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
