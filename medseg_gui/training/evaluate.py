"""Validation: sliding-window inference on the model grid, Dice on the original grid.

This mirrors what the app does with a model card: normalise, run overlapping windows of
``roi_size`` blended with the card's weights (MONAI ``sliding_window_inference``), resample the
tumour probability linearly back onto the study's own grid, threshold it, and compare with the
reference mask there (:func:`~medseg_gui.core.metrics.dice`). A predictor is any
``(B, 1, D, H, W) -> (B, 1, D, H, W)`` probability function: the PyTorch head during training,
ONNX Runtime for the exported model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from monai.inferers.utils import sliding_window_inference

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.metrics import dice
from medseg_gui.core.progress import Progress, check, no_progress
from medseg_gui.core.resample import resample_array
from medseg_gui.inference.model_card import ModelCard, Normalisation
from medseg_gui.inference.network import TumourProbability
from medseg_gui.training.data import PreparedCase, prepare_arrays

Predictor = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class CaseResult:
    case_id: str
    dice: float
    seconds: float
    reference_voxels: int
    predicted_voxels: int


def predict_probability(
    image_hu: npt.NDArray[Any], predictor: Predictor, roi: Sequence[int], norm: Normalisation,
    *, overlap: float = 0.5, blend: str = "gaussian", batch: int = 4,
    device: torch.device | str = "cpu",
) -> npt.NDArray[np.float32]:
    """Tumour probability on the grid of ``image_hu`` (already at the model spacing)."""
    x = torch.from_numpy(norm.apply(image_hu))[None, None].to(device)
    with torch.inference_mode():
        prob = sliding_window_inference(
            x, tuple(int(r) for r in roi), batch, predictor, overlap=overlap, mode=blend,
            padding_mode="constant", cval=norm.pad_value,
        )
    assert isinstance(prob, torch.Tensor)
    return np.asarray(prob[0, 0].float().cpu().numpy(), dtype=np.float32)


def evaluate_case(case: PreparedCase, predictor: Predictor, card: ModelCard,
                  device: torch.device | str = "cpu", batch: int = 4) -> CaseResult:
    """Segment one prepared case and score it on its original grid."""
    start = time.perf_counter()
    prob = predict_probability(case.image, predictor, card.roi_size, card.normalisation,
                               overlap=card.overlap, blend=card.blend, batch=batch,
                               device=device)
    back = resample_array(prob, case.geometry, case.original_geometry, order=1)
    pred = back >= card.threshold
    seconds = time.perf_counter() - start
    ref = case.original_mask > 0
    return CaseResult(case.case_id, round(dice(pred, ref), 4), round(seconds, 2),
                      int(ref.sum()), int(pred.sum()))


def evaluate_cases(cases: Sequence[PreparedCase], predictor: Predictor, card: ModelCard,
                   device: torch.device | str = "cpu", progress: Progress = no_progress,
                   batch: int = 4) -> list[CaseResult]:
    results = []
    for n, case in enumerate(cases):
        check(progress, n / max(len(cases), 1), f"validating {case.case_id}")
        results.append(evaluate_case(case, predictor, card, device, batch))
    return results


def validate(net: torch.nn.Module, card: ModelCard, cases: Sequence[PreparedCase],
             device: torch.device, amp: bool, progress: Progress = no_progress) -> dict[str, Any]:
    """Validation Dice of ``net`` (put in eval mode) with ``card``'s inference settings, on the
    original grids of ``cases``; bfloat16 autocast when ``amp``. See :func:`summarise`."""
    net.eval()
    head = TumourProbability(net).eval()

    def predictor(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out: torch.Tensor = head(x).float()
        return out

    return summarise(evaluate_cases(cases, predictor, card, device, progress))


def summarise(results: Sequence[CaseResult]) -> dict[str, Any]:
    """``{"per_case": {id: dice}, "mean": ..., "median": ..., "seconds_per_case": ...}``."""
    dices = [r.dice for r in results]
    return {
        "per_case": {r.case_id: r.dice for r in results},
        "mean": round(float(np.mean(dices)), 4) if dices else None,
        "median": round(float(np.median(dices)), 4) if dices else None,
        "seconds_per_case": {r.case_id: r.seconds for r in results},
    }


def prepare_nifti_pair(case_id: str, image: str | Path, mask: str | Path,
                       card: ModelCard) -> PreparedCase:
    """Read an image/mask pair (any readable format) and prepare it for :func:`evaluate_case`."""
    from medseg_gui.io.imagefile import read_image

    vol, ref = read_image(image), read_image(mask)
    geom: Geometry = vol.geometry
    norm = card.normalisation
    return prepare_arrays(case_id, vol.array, ref.array, geom, card.spacing,
                          (norm.low, norm.high))


def onnx_predictor(card: ModelCard, threads: int | None = None) -> Predictor:
    """ONNX Runtime (CPU) on the card's graph, as a predictor."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(card.onnx_path), opts,
                                   providers=["CPUExecutionProvider"])

    def run(x: torch.Tensor) -> torch.Tensor:
        out = session.run([card.onnx_output], {card.onnx_input: x.cpu().numpy()})[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32))

    return run
