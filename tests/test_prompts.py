"""The promptable model's Qt-free parts: prompts as data, the channel encoder, crops, AutoZoom,
the way back to the study grid, and the ONNX/TensorRT plumbing for prompt channels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.resample import resample_array
from medseg_gui.core.segmentation import NEOPLASM
from medseg_gui.core.volume import Volume
from medseg_gui.inference.export import write_model_folder
from medseg_gui.inference.interactive import (
    Crop,
    _sample,
    _to_study,
    grow,
    index_box,
    initial_crop,
    predict,
)
from medseg_gui.inference.model_card import LabelInfo, ModelCard, load_card
from medseg_gui.inference.network import build_network
from medseg_gui.inference.prompt_encoding import (
    CHANNELS,
    EncodedPrompts,
    PromptConfig,
    blobs,
    densify,
    encode,
    fill_boxes,
)
from medseg_gui.inference.prompts import (
    PromptError,
    Prompts,
    box,
    check_prompts,
    parse_box,
    parse_triple,
    point,
    scribble,
)

SMALL = PromptConfig(spacing=(2.0, 2.0, 4.0), patch=(16, 32, 32))
ARCH = {"name": "UNet", "params": {"spatial_dims": 3, "in_channels": len(CHANNELS),
                                   "out_channels": 2, "channels": [4, 8], "strides": [2],
                                   "num_res_units": 1, "norm": "instance"}}


def tiny_prompt_card(folder: Path, cfg: PromptConfig = SMALL) -> ModelCard:
    """A verified promptable model folder with a small random-weight UNet."""
    torch.manual_seed(0)
    card = ModelCard("tiny-prompt", "0.1.0", ARCH, cfg.spacing, cfg.patch,
                     [LabelInfo(1, "Lesion", (250, 170, 40), NEOPLASM, NEOPLASM)],
                     onnx_output="object_probability", prompt=cfg.to_json())
    return write_model_folder(card, build_network(ARCH), folder=folder)


def study(shape: tuple[int, int, int] = (24, 60, 64)) -> Volume:
    rng = np.random.default_rng(0)
    arr = (rng.normal(40, 20, size=shape)).astype(np.int16)
    return Volume(arr, Geometry(shape, (0.8, 0.8, 2.5), (-20.0, 10.0, 100.0)))


# -- prompts ---------------------------------------------------------------------------------
def test_prompts_accumulate_and_name_their_last_step() -> None:
    p = point((1, 2, 3)).add(point((4, 5, 6), negative=True)).add(box((0, 0, 0), (5, 5, 0)))
    assert p.positive == ((1.0, 2.0, 3.0),) and p.negative == ((4.0, 5.0, 6.0),)
    assert p.describe() == "AI: box" and p.has_positive and not p.empty
    assert p.positive_points().shape == (3, 3)  # the click and the box corners
    assert scribble([(0, 0, 0), (1, 1, 1)], negative=True).describe() == "AI: negative scribble"


def test_command_line_parsing_rejects_bad_numbers() -> None:
    assert parse_triple("1.5,-2,3", "--point") == (1.5, -2.0, 3.0)
    assert parse_box("0,0,0,1,2,3").b == (1.0, 2.0, 3.0)
    for bad in ("1,2", "a,b,c", "1,2,nan"):
        with pytest.raises(PromptError):
            parse_triple(bad, "--point")
    with pytest.raises(PromptError, match="six numbers"):
        parse_box("1,2,3")


def test_bad_prompts_are_refused_with_one_clear_line() -> None:
    g = study().geometry
    inside = g.index_to_world([30, 30, 12])
    check_prompts(point(inside), g)
    with pytest.raises(PromptError, match="outside the image"):
        check_prompts(point((500.0, 0.0, 0.0)), g)
    with pytest.raises(PromptError, match="no prompt"):
        check_prompts(Prompts(), g)
    with pytest.raises(PromptError, match="only negative"):
        check_prompts(point(inside, negative=True), g)
    check_prompts(point(inside, negative=True), g, has_prior=True)
    with pytest.raises(PromptError, match="empty"):
        check_prompts(box(inside, inside + np.array([3.0, 0.0, 0.0])), g)
    with pytest.raises(PromptError, match="outside the image"):
        check_prompts(box((900, 900, 900), (950, 950, 900)), g)


# -- encoding --------------------------------------------------------------------------------
def test_blobs_are_a_separable_gaussian_blur_of_spikes() -> None:
    shape, sigma = (12, 20, 24), (1.0, 2.0, 1.5)
    pts = torch.tensor([[[3.2, 4.9, 7.1], [3.4, 5.1, 6.9], [11.0, 0.0, 23.0], [40.0, 0, 0]]])
    valid = torch.tensor([[True, True, True, True]])
    got = blobs(pts, valid, shape, sigma)[0]
    # reference: one spike per distinct voxel, full 3D Gaussian sum, truncated at 3 sigma
    spikes = {(3, 5, 7), (11, 0, 23)}  # the first two round to one voxel; the last is outside
    zz, yy, xx = np.indices(shape)
    ref = np.zeros(shape)
    for z, y, x in spikes:
        near = (abs(zz - z) <= 3) & (abs(yy - y) <= 6) & (abs(xx - x) <= 5)
        ref += near * np.exp(-((zz - z) ** 2 / 2 / sigma[0] ** 2 + (yy - y) ** 2 / 2 / sigma[1] ** 2
                               + (xx - x) ** 2 / 2 / sigma[2] ** 2))
    np.testing.assert_allclose(got.numpy(), np.minimum(ref, 1.0), atol=1e-6)
    assert float(got[3, 5, 7]) == 1.0


def test_encode_puts_each_prompt_in_its_channel() -> None:
    cfg = SMALL
    hu = torch.full((1, *cfg.patch), 40.0)
    prior = torch.zeros(1, *cfg.patch)
    prior[0, 8, 16, 16] = 1
    p = EncodedPrompts.empty(1)
    p.positive, p.positive_valid = torch.tensor([[[8.0, 16.0, 16.0]]]), torch.tensor([[True]])
    p.box_lo, p.box_hi = torch.tensor([[[2.0, 3.0, 4.0]]]), torch.tensor([[[2.0, 10.0, 12.0]]])
    p.box_valid = torch.tensor([[True]])
    x = encode(hu, prior, p, cfg)
    assert x.shape == (1, 8, *cfg.patch)
    assert float(x[0, 1].mean()) == pytest.approx(0.0)  # 40 HU is the soft-tissue window centre
    assert float(x[0, 2].sum()) == 1.0 and float(x[0, 3, 8, 16, 16]) == 1.0
    assert float(x[0, 4].sum()) == 0 and float(x[0, 6].sum()) == 0
    assert int(x[0, 5].sum()) == 1 * 8 * 9 and int(x[0, 5, 2].sum()) == 72  # one slice thick
    assert torch.equal(fill_boxes(p.box_lo, p.box_hi, torch.tensor([[False]]), cfg.patch),
                       torch.zeros(1, *cfg.patch))


def test_densify_keeps_points_within_half_a_voxel() -> None:
    line = densify(torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 10.0], [0.0, 6.0, 10.0]]))
    steps = torch.linalg.vector_norm(line[1:] - line[:-1], dim=1)
    assert float(steps.max()) <= 0.5 + 1e-6 and line[-1].tolist() == [0.0, 6.0, 10.0]


def test_prompt_config_round_trips_and_refuses_other_channels() -> None:
    assert PromptConfig.from_json(SMALL.to_json()) == SMALL
    d = SMALL.to_json()
    d["channels"] = ["ct", "prior"]
    with pytest.raises(ValueError, match="channels"):
        PromptConfig.from_json(d)


# -- crops -----------------------------------------------------------------------------------
def test_initial_crop_holds_the_prompts_and_zooms_out_for_a_large_box() -> None:
    g = study().geometry
    c = initial_crop(point((0, 30, 120)), None, g, SMALL)
    assert c.extent == (64.0, 64.0, 64.0) and c.center == (0.0, 30.0, 120.0)
    big = initial_crop(box((-50, 0, 100), (50, 40, 130)), None, g, SMALL)
    assert big.extent[0] >= 100 / (1 - 2 * SMALL.margin) and big.extent[0] <= 4 * 64
    assert big.zoom(SMALL) > 1.0


def test_autozoom_grows_only_towards_image_that_continues() -> None:
    g = Geometry((100, 200, 200), (1.0, 1.0, 1.0), (-100.0, -100.0, -50.0))
    crop = Crop((0.0, 0.0, 0.0), (64.0, 64.0, 64.0), SMALL.patch)
    mask = np.zeros(SMALL.patch, bool)
    mask[4:12, 10:20, 20:32] = True  # touches the high-x side only
    nxt = grow(crop, mask, g, SMALL)
    assert nxt is not None and nxt.extent == (96.0, 64.0, 64.0)
    lo_x = crop.geometry.index_to_world([20, 0, 0])[0]
    assert nxt.center[0] - 48 <= lo_x  # the object's low end stays in view
    inner = np.zeros(SMALL.patch, bool)
    inner[4:12, 10:20, 10:20] = True
    assert grow(crop, inner, g, SMALL) is None
    at_edge = Crop((0.0, 0.0, 20.0), (64.0, 64.0, 64.0), SMALL.patch)  # z beyond the image
    top = np.zeros(SMALL.patch, bool)
    top[-1, 10:20, 10:20] = True
    assert grow(at_edge, top, g, SMALL) is None


def test_crop_sampling_matches_scipy_and_the_way_back_covers_the_crop() -> None:
    vol = study()
    crop = initial_crop(point(vol.geometry.index_to_world([32, 30, 12])), None, vol.geometry,
                        SMALL)
    ours = _sample(vol.array, vol.geometry, crop.geometry, torch.device("cpu"), fill=-1024.0)
    ref = resample_array(vol.array, vol.geometry, crop.geometry, order=1, mode="constant",
                         cval=-1024.0)
    inside = ref > -1000
    assert float(np.abs(ours.numpy()[inside] - ref[inside]).max()) < 1e-3
    prob = torch.zeros(SMALL.patch)
    prob[6:10, 12:20, 12:20] = 1.0
    region, back, covered = _to_study(prob, crop, vol.geometry)
    assert covered.shape == back.shape and covered.mean() > 0.8
    world = crop.geometry.index_to_world([16, 16, 8])
    k, j, i = np.rint(vol.geometry.world_to_index(world)[::-1]).astype(int)
    assert back[k - region[0].start, j - region[1].start, i - region[2].start] == 1.0


def test_index_box_finds_a_small_object_in_a_big_mask() -> None:
    m = np.zeros((40, 64, 64), bool)
    assert index_box(m) is None
    m[10:13, 5:9, 30:31] = True
    assert index_box(m) == ((10, 5, 30), (12, 8, 30))
    assert index_box(m[:, :, :63]) == ((10, 5, 30), (12, 8, 30))  # rows not a multiple of 8


# -- the whole pass, with a random-weight model -------------------------------------------------
@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> ModelCard:
    return tiny_prompt_card(tmp_path_factory.mktemp("engines") / "tiny-prompt" / "0.1.0")


@pytest.mark.parametrize("backend_name", ["onnxruntime", "torch"])
def test_predict_is_stateless_and_maps_back_onto_the_study(card: ModelCard,
                                                           backend_name: str) -> None:
    from medseg_gui.inference.backend import open_backend

    vol = study((40, 160, 160))  # 128 x 128 x 100 mm: larger than one crop
    be = open_backend(card, backend_name, device="cpu")
    p = point(vol.geometry.index_to_world([80, 80, 20]))
    a, b = predict(vol, card, be, p, autozoom=False), predict(vol, card, be, p, autozoom=False)
    assert np.array_equal(a.mask, b.mask) and a.region == b.region
    assert a.backend == backend_name and len(a.passes) == 1
    full = a.full_mask(vol.shape)
    assert full.shape == vol.shape and full[a.region].sum() == a.mask[a.covered].sum()
    assert a.region[1].start > 5 and a.region[2].start > 5
    prior = np.zeros(vol.shape, bool)
    prior[:3, :5, :5] = True  # outside the crop: kept as it is
    assert a.full_mask(vol.shape, prior=prior)[:3, :5, :5].all()
    be.close()


def test_onnx_graph_takes_prompt_channels_and_any_crop_size(card: ModelCard) -> None:
    import onnxruntime as ort

    assert load_card(card.folder).promptable
    session = ort.InferenceSession(str(card.onnx_path), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    assert shape[1] == len(CHANNELS) and isinstance(shape[2], str)
    for d, h, w in ((16, 32, 32), (32, 48, 16)):
        out = session.run(None, {"image": np.zeros((1, 8, d, h, w), np.float32)})[0]
        assert out.shape == (1, 1, d, h, w)
    assert card.training["onnx_export"]["max_abs_diff_vs_torch"] < 1e-4


def test_tensorrt_profile_spans_half_to_twice_the_crop(card: ModelCard) -> None:
    from medseg_gui.inference.tensorrt_backend import profile_shapes

    low, opt, high = profile_shapes(card)
    assert opt == (1, 8, 16, 32, 32) and low[1:] == (8, 8, 16, 16) and high[2:] == (32, 64, 64)


def test_float16_exact_weights_are_stored_as_float16_without_changing_the_result(
        tmp_path: Path) -> None:
    import onnxruntime as ort

    torch.manual_seed(1)
    net = build_network(ARCH)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(p.half().float())  # what came back from the GPU machine
    card = ModelCard("tiny-prompt", "0.2.0", ARCH, SMALL.spacing, SMALL.patch,
                     [LabelInfo(1, "Lesion", (250, 170, 40), NEOPLASM, NEOPLASM)],
                     onnx_output="object_probability", prompt=SMALL.to_json())
    card = write_model_folder(card, net, folder=tmp_path / "m")
    assert card.training["onnx_export"]["weights"].startswith("float16")
    assert card.training["onnx_export"]["max_abs_diff_vs_torch"] < 1e-4
    from safetensors.torch import load_file

    assert {t.dtype for t in load_file(str(card.weights_path)).values()} == {torch.float16}
    session = ort.InferenceSession(str(card.onnx_path), providers=["CPUExecutionProvider"])
    assert session.run(None, {"image": np.zeros((1, 8, 16, 32, 32), np.float32)})[0].shape == (
        1, 1, 16, 32, 32)
