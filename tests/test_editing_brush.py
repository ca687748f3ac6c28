"""Undo history, brush and eraser on real CT (STS_001 of the IBSI soft-tissue sarcoma set)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.segmentation import Segment, Segmentation, SegmentSource
from medseg_gui.core.volume import Volume
from medseg_gui.editing.base import ViewAxis, spacing_kji
from medseg_gui.editing.brush import BrushSettings, BrushShape, stamp_kernel, stroke_centers
from medseg_gui.editing.constraints import MaskMode, Overwrite, PaintConstraint
from medseg_gui.editing.editor import SegmentEditor
from medseg_gui.editing.history import Edit, History
from medseg_gui.io.imagefile import read_image


@lru_cache(maxsize=1)
def _sts(root: Path) -> tuple[Volume, np.ndarray]:
    ct = read_image(root / "ibsi_sts/nifti/STS_001/CT_image.nii.gz")
    mask = read_image(root / "ibsi_sts/nifti/STS_001/CT_mask.nii.gz").array.astype(np.uint8)
    return ct, mask


@pytest.fixture
def case(shared_data: Path) -> tuple[Volume, Segmentation]:
    """Real CT plus its real tumour mask as an AI draft (label 1) and an empty label 2."""
    ct, mask = _sts(shared_data)
    segs = [Segment(1, "Tumour", source=SegmentSource.AUTOMATIC, model="demo:1"),
            Segment(2, "Muscle", color=(80, 170, 240))]
    return ct, Segmentation(mask.copy(), ct.geometry, segs)


def _centre_ijk(mask: np.ndarray) -> np.ndarray:
    k, j, i = np.argwhere(mask).mean(axis=0)
    return np.array([i, j, k])


# -- history ------------------------------------------------------------------------------------
def test_edit_stores_only_changed_voxels_and_round_trips(case: tuple[Volume, Segmentation]) -> None:
    _, seg = case
    before = seg.labelmap.copy()
    region = (slice(10, 30), slice(40, 120), slice(40, 120))
    old = seg.labelmap[region].copy()
    new = old.copy()
    new[5, 10:14, 20:25] = 2
    edit = Edit.from_arrays("t", region, old, new)
    assert edit is not None and edit.n_changed == 4 * 5
    assert edit.region == (slice(15, 16), slice(50, 54), slice(60, 65))  # shrunk to the change
    edit.apply(seg)
    assert np.count_nonzero(seg.labelmap != before) == 20
    edit.revert(seg)
    assert np.array_equal(seg.labelmap, before)
    assert Edit.from_arrays("none", region, old, old.copy()) is None


def test_history_cap_is_bytes_and_evicts_oldest() -> None:
    seg = Segmentation.empty(Geometry((20, 64, 64)), [Segment(1, "a")])
    rng = np.random.default_rng(0)
    edits = []
    for n in range(40):
        region = (slice(n % 20, n % 20 + 1), slice(0, 64), slice(0, 64))
        old = seg.labelmap[region].copy()
        new = (rng.random(old.shape) < 0.5).astype(np.uint8)  # incompressible: ~1 kB each
        e = Edit.from_arrays(f"e{n}", region, old, new)
        assert e is not None
        e.apply(seg)
        edits.append(e)
    cap = sum(e.nbytes for e in edits[-10:])
    hist = History(max_bytes=cap)
    for e in edits:
        hist.push(e)
    assert hist.nbytes <= cap
    assert len(hist) == 10 and hist.evicted == 30
    assert hist.undo_name() == "e39"
    undone = [hist.undo(seg) for _ in range(12)]
    assert [u.name for u in undone if u is not None] == [f"e{n}" for n in range(39, 29, -1)]


def test_history_keeps_hundreds_of_strokes_in_little_memory(
        case: tuple[Volume, Segmentation]) -> None:
    ct, seg = case
    editor = SegmentEditor(seg, ct.array)
    editor.active_label = 2
    editor.brush = BrushSettings(diameter_mm=8.0)
    rng = np.random.default_rng(1)
    hi = np.array(seg.geometry.size_ijk) - 1
    for _ in range(300):
        p = rng.uniform(0, hi)
        editor.begin_stroke(p)
        for _ in range(8):
            p = np.clip(p + rng.normal(0, 4, 3), 0, hi)
            editor.continue_stroke(p)
        editor.end_stroke()
    assert len(editor.history) == 300
    assert editor.history.nbytes < 5 * 1024 * 1024


# -- brush kernels and stroke sampling -------------------------------------------------------
def test_kernels_respect_anisotropic_spacing(case: tuple[Volume, Segmentation]) -> None:
    sp = spacing_kji(case[0].geometry)  # ~ (3.27, 0.98, 0.98) mm
    ball = stamp_kernel(10.0, sp)
    assert ball.shape == (3, 11, 11)  # 5 mm radius: +-1 slice, +-5 voxels in plane
    assert stamp_kernel(10.0, sp) is ball  # cached
    disc = BrushSettings(10.0, BrushShape.DISC, ViewAxis.CORONAL).kernel(sp)
    assert disc.shape == (3, 1, 11)
    assert stamp_kernel(0.1, sp).sum() == 1  # smaller than a voxel: one voxel


def test_fast_mouse_stroke_has_no_gaps(case: tuple[Volume, Segmentation]) -> None:
    ct, seg = case
    seg.labelmap[:] = 0
    editor = SegmentEditor(seg, ct.array)
    editor.brush = BrushSettings(2.0, BrushShape.DISC, ViewAxis.AXIAL)
    # Two mouse events 150 voxels apart on axial slice 30: one jump across the image.
    editor.begin_stroke((20.0, 30.0, 30.0))
    editor.continue_stroke((180.0, 170.0, 30.0))
    edit = editor.end_stroke()
    assert edit is not None
    painted = seg.labelmap == 1
    assert set(np.flatnonzero(painted.any(axis=(1, 2)))) == {30}  # stayed on its slice
    _, n = ndimage.label(painted[30], structure=np.ones((3, 3)))
    assert n == 1
    assert painted[30, 30, 20] and painted[30, 170, 180]
    for t in np.linspace(0, 1, 400):  # every voxel on the segment is painted
        i, j = np.rint(np.array([20.0, 30.0]) + t * np.array([160.0, 140.0])).astype(int)
        assert painted[30, j, i]
    cs = stroke_centers((0, 0, 0), (100, 0, 0), 0.1, (3.0, 1.0, 1.0))
    assert [c[2] for c in cs] == list(range(1, 101))  # tiny brush: every voxel


# -- painting, erasing, limits ------------------------------------------------------------------
def test_stroke_paint_undo_redo_exact(case: tuple[Volume, Segmentation]) -> None:
    ct, seg = case
    editor = SegmentEditor(seg, ct.array)
    editor.active_label = 2
    before = seg.labelmap.copy()
    editor.begin_stroke((60.0, 60.0, 20.0))
    for x in range(61, 140, 7):
        editor.continue_stroke((float(x), 60.0 + (x - 60) / 2, 20.0))
    edit = editor.end_stroke()
    assert edit is not None and edit.name == "Paint" and len(editor.history) == 1
    after = seg.labelmap.copy()
    changed = after != before
    assert np.all(after[changed] == 2)
    # A 10 mm ball on 3.27 mm slices spans slices 19..21 only.
    assert set(np.flatnonzero(changed.any(axis=(1, 2)))) == {19, 20, 21}
    assert editor.undo() is edit
    assert np.array_equal(seg.labelmap, before)
    editor.redo()
    assert np.array_equal(seg.labelmap, after)


def test_eraser_only_clears_active_segment_unless_any(case: tuple[Volume, Segmentation]) -> None:
    ct, seg = case
    centre = _centre_ijk(seg.labelmap == 1)
    seg.labelmap[round(centre[2]), :, :][seg.labelmap[round(centre[2])] == 0] = 2
    before = seg.labelmap.copy()
    editor = SegmentEditor(seg, ct.array)
    editor.active_label = 1
    editor.brush = BrushSettings(150.0, BrushShape.DISC, ViewAxis.AXIAL)
    editor.begin_stroke(centre, erase=True)
    editor.end_stroke()
    cleared = before != seg.labelmap
    assert cleared.any() and np.all(before[cleared] == 1) and np.all(seg.labelmap[cleared] == 0)
    editor.undo()
    assert np.array_equal(seg.labelmap, before)
    editor.brush = BrushSettings(150.0, BrushShape.DISC, ViewAxis.AXIAL,
                                 PaintConstraint(erase_any=True))
    editor.begin_stroke(centre, erase=True)
    editor.end_stroke()
    cleared = before != seg.labelmap
    assert set(np.unique(before[cleared]).tolist()) == {1, 2}


def test_intensity_limited_paint_leaves_out_of_range_voxels(
        case: tuple[Volume, Segmentation]) -> None:
    ct, seg = case
    seg.labelmap[:] = 0
    editor = SegmentEditor(seg, ct.array)
    editor.active_label = 2
    preset = PaintConstraint.preset("Muscle")  # 10..100 HU: the sarcoma is partly below
    editor.brush = BrushSettings(60.0, BrushShape.SPHERE, constraint=preset)
    centre = np.array(seg.geometry.size_ijk) / 2.0
    editor.begin_stroke(centre)
    editor.end_stroke()
    full = stamp_kernel(60.0, spacing_kji(seg.geometry))
    painted = seg.labelmap == 2
    hu = ct.array
    lo, hi = preset.hu_range or (0, 0)
    assert painted.any()
    assert np.all((hu[painted] >= lo) & (hu[painted] <= hi))
    # The ball (not clipped: the centre is far from the edges) covered voxels out of range.
    c = np.rint(centre[::-1]).astype(int)
    h = np.array(full.shape) // 2
    box = tuple(slice(int(a - b), int(a + b + 1)) for a, b in zip(c, h, strict=True))
    ball = full
    in_ball_out_of_range = ball & ((hu[box] < lo) | (hu[box] > hi))
    assert in_ball_out_of_range.sum() > 100
    assert not painted[box][in_ball_out_of_range].any()


def test_paint_only_inside_segment_and_no_overwrite(case: tuple[Volume, Segmentation]) -> None:
    ct, seg = case
    before = seg.labelmap.copy()
    editor = SegmentEditor(seg, ct.array)
    editor.active_label = 2
    centre = _centre_ijk(before == 1)
    editor.brush = BrushSettings(80.0, constraint=PaintConstraint(mask_mode=MaskMode.INSIDE,
                                                                  mask_label=1))
    editor.begin_stroke(centre)
    editor.end_stroke()
    changed = seg.labelmap != before
    assert changed.any() and np.all(before[changed] == 1)
    editor.undo()
    editor.brush = BrushSettings(80.0, constraint=PaintConstraint(overwrite=Overwrite.NONE))
    editor.begin_stroke(centre)
    editor.end_stroke()
    changed = seg.labelmap != before
    assert changed.any() and np.all(before[changed] == 0)


def test_editing_an_ai_segment_marks_it_corrected_in_the_same_step(
        case: tuple[Volume, Segmentation]) -> None:
    ct, seg = case
    editor = SegmentEditor(seg, ct.array)
    editor.active_label = 1
    editor.begin_stroke(_centre_ijk(seg.labelmap == 1) + 30, erase=False)
    editor.end_stroke()
    assert seg.segment(1).source is SegmentSource.SEMIAUTOMATIC
    editor.undo()
    assert seg.segment(1).source is SegmentSource.AUTOMATIC


def test_cancelled_stroke_restores_voxels(case: tuple[Volume, Segmentation]) -> None:
    ct, seg = case
    before = seg.labelmap.copy()
    editor = SegmentEditor(seg, ct.array)
    editor.active_label = 2
    editor.begin_stroke((50.0, 50.0, 10.0))
    editor.continue_stroke((150.0, 150.0, 40.0))
    assert not np.array_equal(seg.labelmap, before)
    editor.cancel_stroke()
    assert np.array_equal(seg.labelmap, before) and len(editor.history) == 0
