"""The CUDA paths of the inference pipeline (skipped where PyTorch sees no GPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medseg_gui.inference.backend import auto_choice, open_backend
from medseg_gui.inference.model_card import ModelCard
from medseg_gui.inference.pipeline import prepare, segment
from medseg_gui.inference.sliding import sliding_window_probability
from medseg_gui.inference.torch_backend import TorchBackend
from tests.test_inference import ct_like, make_card

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> ModelCard:
    return make_card(tmp_path_factory.mktemp("gpu") / "tiny-unet" / "0.1.0")


@pytest.fixture(autouse=True)
def no_tf32() -> None:
    # TF32 convolutions would put ~1e-3 between CPU and GPU; the checks below are about fp32.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def test_cuda_pipeline_equals_monai_on_the_gpu(card: ModelCard) -> None:
    from monai.inferers import sliding_window_inference

    backend = TorchBackend(card, device="cuda")
    _, image = prepare(ct_like((40, 90, 80)), card)
    x = torch.from_numpy(image).cuda()
    with torch.inference_mode():
        ref = sliding_window_inference(x[None, None], card.roi_size, 4, backend.module,
                                       overlap=card.overlap, mode="gaussian")[0, 0]
    ours, _ = sliding_window_probability(x, backend.run, card.roi_size, overlap=card.overlap,
                                         batch_size=8)
    assert ours.is_cuda  # accumulated on the GPU
    assert float((ours - ref).abs().max()) < 1e-4


def test_cuda_backend_agrees_with_cpu(card: ModelCard) -> None:
    batch = torch.randn(4, 1, *card.roi_size)
    gpu = TorchBackend(card, device="cuda").run(batch.cuda()).cpu()
    cpu = TorchBackend(card).run(batch)
    assert float((gpu - cpu).abs().max()) < 1e-4


def test_auto_on_gpu_reports_what_ran(card: ModelCard) -> None:
    name, device = auto_choice()
    assert device == "cuda"
    if name == "tensorrt":
        pytest.skip("TensorRT present: not expected on these machines")
    backend = open_backend(card, "auto")
    assert backend.device.startswith("cuda") and backend.name == name
    result = segment(ct_like(), card, backend)
    assert result.device.startswith("cuda") and result.precision == backend.precision


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_agrees_with_fp32_on_gpu(card: ModelCard, precision: str,
                                                tmp_path: Path) -> None:
    big = make_card(tmp_path / "big", roi=(32, 64, 64))
    volume = ct_like((60, 160, 150))
    fp32 = segment(volume, big, TorchBackend(big, device="cuda"))
    half = segment(volume, big, TorchBackend(big, device="cuda", precision=precision,
                                             channels_last=True))
    a, b = fp32.segmentation.labelmap > 0, half.segmentation.labelmap > 0
    agree = float((a == b).mean())
    dice = 2 * float((a & b).sum()) / float(a.sum() + b.sum())
    print(f"{precision}: voxel agreement {agree:.5f}, Dice {dice:.4f}")
    assert agree >= (0.999 if precision == "fp16" else 0.99)
    assert np.abs(fp32.probability.astype(np.float32)
                  - half.probability.astype(np.float32)).max() < 0.1


def test_onnxruntime_on_gpu_when_its_cuda_provider_exists(card: ModelCard) -> None:
    ort = pytest.importorskip("onnxruntime")
    backend = open_backend(card, "onnxruntime", device="cuda")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert backend.device == "cpu"  # the documented fallback, and it says so
        pytest.skip("onnxruntime here has no CUDA execution provider")
    batch = torch.randn(3, 1, *card.roi_size, device="cuda")
    ref = TorchBackend(card, device="cuda").run(batch)
    assert float((backend.run(batch) - ref).abs().max()) < 1e-4


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_windows_split_over_every_gpu_equal_one_gpu(card: ModelCard) -> None:
    from medseg_gui.inference.backend import open_backends

    volume = ct_like((60, 90, 80))
    group = open_backends(card, "torch", precision="fp32")
    assert [b.device for b in group] == [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    one = segment(volume, card, group[0], batch_size=2)
    many = segment(volume, card, group, batch_size=2)
    assert many.device == "+".join(b.device for b in group)
    diff = np.abs(one.probability.astype(np.float32) - many.probability.astype(np.float32))
    assert diff.max() <= 1e-3  # float16 output
    assert (one.segmentation.labelmap == many.segmentation.labelmap).mean() > 0.9999


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_graph_replays_equal_plain_calls(card: ModelCard, precision: str) -> None:
    plain = TorchBackend(card, device="cuda", precision=precision)
    graphed = TorchBackend(card, device="cuda", precision=precision, graphs=True)
    torch.manual_seed(0)
    for n in (4, 3, 4, 1, 6):  # smaller batches are padded; a larger one is captured again
        batch = torch.randn(n, 1, *card.roi_size, device="cuda")
        ref, got = plain.run(batch), graphed.run(batch)
        assert got.shape == ref.shape
        assert float((got - ref).abs().max()) < (1e-5 if precision == "fp32" else 2e-3)
    assert graphed.graphs and graphed._graph is not None and graphed._graph.batch == 6
