"""Synthetic lung and liver lesions in real CT: seeded, inside their organ, within the declared
HU and size ranges, never overlapping, and prepared in the promptable model's set format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from medseg_gui.training.interactive_data import decode_hu, encode_hu, open_interactive
from medseg_gui.training.synthetic_data import (
    COLLECTION,
    HostImage,
    load_host,
    prepare_synthetic,
    synthesize,
)
from medseg_gui.training.synthetic_hosts import Host, synthetic_hosts
from medseg_gui.training.synthetic_lesions import PARAMETERS, Lesion

SPACING = (1.5, 1.5, 3.0)
SEED = 7


@pytest.fixture(scope="module")
def host(shared_data: Path) -> Host:
    return next(h for h in synthetic_hosts(shared_data) if h.host_id == "totalseg_3mm")


@pytest.fixture(scope="module")
def image(host: Host) -> HostImage:
    return load_host(host, SPACING)


@pytest.fixture(scope="module")
def drawn(image: HostImage) -> list[tuple[np.ndarray, list[Lesion]]]:
    return [synthesize(image, SEED, v) for v in range(4)]


def test_hosts_keep_their_split_and_ibsi_lung_is_never_a_host(shared_data: Path) -> None:
    hosts = synthetic_hosts(shared_data, splits=("train", "validation", "test"))
    split = {h.host_id: h.split for h in hosts}
    assert split["totalseg_3mm"] == "train" and split["totalseg_dicom"] == "test"
    assert split["crlm_1004"] == "train" and split["crlm_1006"] == "test"
    assert {"validation", "test"} <= {s for h, s in split.items() if h.startswith("openkbp")}
    assert not any("ibsi" in str(h.image) for h in hosts)


def test_the_same_seed_draws_the_same_lesions(image: HostImage,
                                              drawn: list[tuple[np.ndarray, list[Lesion]]]
                                              ) -> None:
    hu, lesions = synthesize(image, SEED, 0)
    np.testing.assert_array_equal(hu, drawn[0][0])
    assert [(les.box, les.subtype) for les in lesions] == [(les.box, les.subtype)
                                                           for les in drawn[0][1]]
    other, _ = synthesize(image, SEED + 1, 0)
    assert not np.array_equal(other, hu)


def test_lesions_lie_inside_their_organ_and_never_overlap(
        image: HostImage, drawn: list[tuple[np.ndarray, list[Lesion]]]) -> None:
    kinds = set()
    for hu, lesions in drawn:
        assert lesions
        seen = np.zeros(hu.shape, dtype=bool)
        for les in lesions:
            full = les.full_mask(hu.shape)
            assert not (full & ~image.organs[les.organ].mask).any()
            assert not (full & seen).any()
            seen |= full
            kinds.add(les.kind)
        # outside every lesion's reach the CT is untouched
        reach = ndimage.binary_dilation(seen, iterations=6)
        np.testing.assert_array_equal(hu[~reach], image.hu[~reach])
    assert kinds == {"lung_lesion", "liver_lesion"}


def test_attenuation_and_size_stay_in_the_declared_ranges(
        image: HostImage, drawn: list[tuple[np.ndarray, list[Lesion]]]) -> None:
    lung, liver = PARAMETERS["lung"], PARAMETERS["liver"]
    sp = image.geometry.spacing[::-1]
    for hu, lesions in drawn:
        for les in lesions:
            p = PARAMETERS[les.organ]
            assert p["diameter_mm"][0] <= les.diameter_mm <= p["diameter_mm"][1]
            # the mask is no larger than the drawn size allows (lobes and spikes included)
            d_eq = 2 * (3 * les.mask.sum() * np.prod(sp) / (4 * np.pi)) ** (1 / 3)
            assert d_eq <= 1.6 * les.diameter_mm + 2 * max(sp)
            if les.subtype in ("solid", "spiculated"):
                assert lung["solid_hu"][0] <= les.mean_hu <= lung["solid_hu"][1]
            elif les.organ == "lung":
                assert lung["ground_glass_hu"][0] <= les.mean_hu <= lung["ground_glass_hu"][1]
                if les.host_hu < -450:  # room for it: it stands out from the lung round it
                    assert les.contrast_hu >= lung["ground_glass_above_lung_hu_min"]
            elif les.subtype == "hcc":
                assert liver["hcc_delta_hu"][0] <= les.contrast_hu <= liver["hcc_delta_hu"][1]
            else:
                lo, hi = liver["metastasis_below_hu"]
                assert lo <= -les.contrast_hu <= hi
            if les.subtype == "metastasis" and les.mask.sum() >= 30:
                # what is measured in the CT: the drawn contrast, give or take texture and noise
                full = les.full_mask(hu.shape)
                core = ndimage.binary_erosion(full) if ndimage.binary_erosion(full).sum() >= 10 \
                    else full
                measured = float(hu[core].mean()) - les.host_hu
                assert abs(measured - les.contrast_hu) < 15


def test_the_lesion_is_not_smoother_than_its_host(
        image: HostImage, drawn: list[tuple[np.ndarray, list[Lesion]]]) -> None:
    from medseg_gui.training.synthetic_lesions import highpass_sd

    host_sd = image.organs["liver"].noise_sd
    checked = 0
    for hu, lesions in drawn:
        for les in lesions:
            core = ndimage.binary_erosion(les.full_mask(hu.shape))
            if les.organ == "liver" and core.sum() >= 50:
                assert highpass_sd(hu, core) >= 0.8 * host_sd
                checked += 1
    assert checked


def test_a_prepared_synthetic_case_reads_back_with_its_masks(
        tmp_path: Path, shared_data: Path, host: Host, image: HostImage,
        drawn: list[tuple[np.ndarray, list[Lesion]]]) -> None:
    out = tmp_path / "set"
    done = prepare_synthetic(shared_data, out, SPACING, seed=SEED, variants=2, hosts=[host])
    assert [c.case_id for c in done.cases] == ["synth_totalseg_3mm_v0", "synth_totalseg_3mm_v1"]
    again = open_interactive(out)
    assert again.data_sha256 == done.data_sha256
    for v, case in enumerate(again.cases):
        assert case.collection == COLLECTION and case.split == "train"
        assert set(case.sources) == {"example_ct_sm.nii.gz", "example_seg.nii.gz", "generator"}
        loaded = again.load(case.case_id)
        hu, lesions = drawn[v]
        assert [o.kind for o in case.objects] == [les.kind for les in lesions]
        for mask, les in zip(loaded.masks, lesions, strict=True):
            np.testing.assert_array_equal(mask, les.full_mask(hu.shape))
        np.testing.assert_array_equal(loaded.hu, decode_hu(encode_hu(hu)))
    # another seed is another set: the hash covers the generator
    other = prepare_synthetic(shared_data, tmp_path / "other", SPACING, seed=SEED + 1,
                              variants=2, hosts=[host])
    assert other.data_sha256 != done.data_sha256


def test_synthetic_cases_join_a_set_and_old_sets_keep_their_odds(
        tmp_path: Path, shared_data: Path, host: Host) -> None:
    import torch

    from medseg_gui.inference.prompt_encoding import PromptConfig
    from medseg_gui.training.interactive_data import prepare_sources, shared_sources
    from medseg_gui.training.prompt_sampler import GROUP_ODDS, PatchSampler

    out = tmp_path / "both"
    real = [s for s in shared_sources(shared_data) if s.case_id == "totalseg_3mm"]
    plain = prepare_sources(real, out, SPACING)
    both = prepare_synthetic(shared_data, out, SPACING, seed=SEED, variants=1, hosts=[host])
    assert {c.collection for c in both.cases} == {"totalseg", "synthetic"}
    assert both.data_sha256 != plain.data_sha256
    assert sum(GROUP_ODDS.values()) == pytest.approx(1.0)
    old = {"sarcoma/tumour": 0.35, "openkbp/target": 0.25, "openkbp/organ": 0.20,
           "totalseg/organ": 0.20}
    kept = {g: GROUP_ODDS[g] for g in old}
    for g, w in old.items():  # the real groups keep their proportions
        assert kept[g] / sum(kept.values()) == pytest.approx(w)
    cfg = PromptConfig(spacing=(2.0, 2.0, 4.0), patch=(16, 32, 32))
    cases = [both.load(c.case_id) for c in both.cases]
    sampler = PatchSampler(cases, cfg, torch.device("cpu"))
    groups = np.asarray(sampler.groups)
    weights = sampler.weights.numpy()
    share = {g: float(weights[groups == g].sum()) for g in set(sampler.groups)}
    total = sum(GROUP_ODDS[g] for g in share)
    for g, got in share.items():
        assert got == pytest.approx(GROUP_ODDS[g] / total)
