"""The pycuda buffer path of the TensorRT backend, on a real GPU with a real pycuda.

TensorRT itself cannot be installed on our machines, so the engine launch is played by the
product's PyTorch model running on pycuda's stream over pycuda's device buffers: what is checked
is the part that is ours and runs without TensorRT (page-locked buffers, asynchronous copies,
the stream handle, sharing PyTorch's primary context).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg_gui.inference.model_card import ModelCard
from medseg_gui.inference.torch_backend import TorchBackend
from tests.test_inference import make_card

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> ModelCard:
    return make_card(tmp_path_factory.mktemp("pycuda") / "tiny-unet" / "0.1.0")


def test_pinned_buffers_run_a_model_on_their_stream(card: ModelCard) -> None:
    pytest.importorskip("pycuda.driver")
    from medseg_gui.inference.pycuda_buffers import PinnedBuffers, as_torch

    roi = tuple(card.roi_size)
    model = TorchBackend(card, device="cuda:0")
    buffers = PinnedBuffers((4, 1, *roi), 0)
    streams: list[int] = []

    def launch(d_in: int, d_out: int, stream: int) -> bool:
        streams.append(stream)
        shape = (n, 1, *roi)
        with torch.cuda.stream(torch.cuda.ExternalStream(stream)):
            as_torch(d_out, shape).copy_(model.run(as_torch(d_in, shape)))
        return True

    rng = np.random.default_rng(0)
    for n in (3, 4, 1):
        batch = rng.normal(size=(n, 1, *roi)).astype(np.float32)
        out = buffers.run(batch, launch)
        ref = model.run(torch.from_numpy(batch).cuda()).cpu().numpy()
        assert out.shape == batch.shape
        assert float(np.abs(out - ref).max()) < 1e-5
    assert len(set(streams)) == 1 and streams[0] != 0  # one pycuda stream, not the default
    with pytest.raises(ValueError, match="exceeds"):
        buffers.run(np.zeros((5, 1, *roi), np.float32), launch)
    with pytest.raises(RuntimeError, match="launch"):
        buffers.run(np.zeros((1, 1, *roi), np.float32), lambda a, b, s: False)
    buffers.close()
    assert float(torch.ones(2, device="cuda:0").sum()) == 2.0  # PyTorch's context lives on


def test_prompt_crops_of_any_size_share_the_flat_buffers() -> None:
    """A promptable model's engine takes 8 channels and any crop up to its profile's largest:
    one set of flat buffers sized for the largest serves every smaller crop, and the output is
    one channel of the crop's own shape."""
    pytest.importorskip("pycuda.driver")
    from medseg_gui.inference.pycuda_buffers import PinnedBuffers, as_torch

    weight = np.linspace(-1.0, 1.0, 8, dtype=np.float32)
    w = torch.from_numpy(weight).cuda()[None, :, None, None, None]
    buffers = PinnedBuffers((1, 8, 64, 128, 128), 0)  # the profile's largest crop
    current: list[tuple[int, ...]] = []

    def launch(d_in: int, d_out: int, stream: int) -> bool:  # the engine's stand-in
        shape = current[0]
        with torch.cuda.stream(torch.cuda.ExternalStream(stream)):
            x = as_torch(d_in, shape)
            as_torch(d_out, (shape[0], 1, *shape[2:])).copy_(
                torch.sigmoid((x * w).sum(1, keepdim=True)))
        return True

    rng = np.random.default_rng(1)
    for shape in [(1, 8, 16, 32, 32), (1, 8, 64, 128, 128), (1, 8, 32, 48, 80)]:
        current[:] = [shape]
        batch = rng.normal(size=shape).astype(np.float32)
        out = buffers.run(batch, launch)
        ref = 1.0 / (1.0 + np.exp(-(batch * weight[None, :, None, None, None]).sum(1,
                                                                                  keepdims=True)))
        assert out.shape == (1, 1, *shape[2:])
        assert float(np.abs(out - ref).max()) < 1e-5
    with pytest.raises(ValueError, match="exceeds"):
        buffers.run(np.zeros((1, 8, 64, 128, 144), np.float32), launch)
    buffers.close()
