"""Fill, scissors, fill between slices, islands, smoothing, margins, segment table, with undo."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from medseg_gui.core.metrics import dice
from medseg_gui.core.segmentation import Segment, Segmentation
from medseg_gui.core.volume import Volume
from medseg_gui.editing.base import Change, ViewAxis, spacing_kji
from medseg_gui.editing.editor import SegmentEditor
from medseg_gui.editing.interpolate import fill_between_slices
from medseg_gui.editing.morphology import (
    closing,
    grow_shrink,
    keep_largest_island,
    median_smooth,
    remove_small_islands,
    split_islands,
)
from medseg_gui.editing.regions import ScissorsOp, region_grow, scissors
from medseg_gui.editing.segments import recolor_segment, rename_segment
from medseg_gui.io.imagefile import read_image


@lru_cache(maxsize=1)
def _sts(root: Path) -> tuple[Volume, np.ndarray]:
    ct = read_image(root / "ibsi_sts/nifti/STS_001/CT_image.nii.gz")
    mask = read_image(root / "ibsi_sts/nifti/STS_001/CT_mask.nii.gz").array.astype(np.uint8)
    return ct, mask


@pytest.fixture
def case(shared_data: Path) -> tuple[Volume, Segmentation, SegmentEditor]:
    ct, mask = _sts(shared_data)
    seg = Segmentation(mask.copy(), ct.geometry, [Segment(1, "Tumour"), Segment(2, "Other")])
    return ct, seg, SegmentEditor(seg, ct.array)


def _commit_undo_redo(editor: SegmentEditor, change: Change) -> tuple[np.ndarray, np.ndarray]:
    """Apply a change; check undo restores exactly and redo re-applies. Returns before, after."""
    seg = editor.segmentation
    before, table_before = seg.labelmap.copy(), list(seg.segments)
    edit = editor.apply(change)
    assert edit is not None, f"{change.name} changed nothing"
    after, table_after = seg.labelmap.copy(), list(seg.segments)
    assert editor.undo() is edit
    assert np.array_equal(seg.labelmap, before) and seg.segments == table_before
    assert editor.redo() is edit
    assert np.array_equal(seg.labelmap, after) and seg.segments == table_after
    return before, after


def _seed(mask: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int]]:
    kji = tuple(int(v) for v in np.rint(np.argwhere(mask).mean(axis=0)))
    return np.array(kji[::-1], dtype=float), (kji[0], kji[1], kji[2])


def test_region_grow_3d_and_2d(case: tuple[Volume, Segmentation, SegmentEditor]) -> None:
    ct, seg, editor = case
    seed_ijk, (k, j, i) = _seed(seg.labelmap == 1)
    hu = ct.array
    change = region_grow(seg, hu, seed_ijk, 2, tolerance_hu=40.0, max_radius_mm=40.0)
    before, after = _commit_undo_redo(editor, change)
    filled = (after == 2) & (before != 2)
    centre = float(hu[k, j, i])
    assert filled[k, j, i]
    assert np.all(np.abs(hu[filled] - centre) <= 40.0)
    labels, _ = ndimage.label(after == 2)
    assert np.unique(labels[filled]).size == 1  # one connected piece through the seed
    # Closed under growth: no in-range face neighbour inside the box was left out.
    box = change.region
    assert box is not None
    grown = ndimage.binary_dilation(filled[box]) & (np.abs(hu[box] - centre) <= 40.0)
    assert not (grown & ~filled[box]).any()
    sp = spacing_kji(seg.geometry)
    assert all((s.stop - s.start) * d <= 2 * 40.0 + 3 * d for s, d in zip(box, sp, strict=True))
    editor.undo()
    flat = region_grow(seg, hu, seed_ijk, 2, tolerance_hu=40.0, axis=ViewAxis.AXIAL)
    before, after = _commit_undo_redo(editor, flat)
    assert set(np.flatnonzero((after != before).any(axis=(1, 2)))) == {k}


def test_scissors_erase_inside_through_depth(
        case: tuple[Volume, Segmentation, SegmentEditor]) -> None:
    _, seg, editor = case
    _, (k, j, i) = _seed(seg.labelmap == 1)
    square = [(i - 10.4, j - 5.4), (i + 10.4, j - 5.4), (i + 10.4, j + 5.4), (i - 10.4, j + 5.4)]
    change = scissors(seg, square, ViewAxis.AXIAL, 1, op=ScissorsOp.ERASE_INSIDE,
                      depth=(k - 2, k + 2))
    before, after = _commit_undo_redo(editor, change)
    expected = before.copy()
    box = (slice(k - 2, k + 3), slice(j - 5, j + 6), slice(i - 10, i + 11))
    expected[box][expected[box] == 1] = 0
    assert np.array_equal(after, expected)


def test_scissors_fill_and_erase_outside_sagittal(
        case: tuple[Volume, Segmentation, SegmentEditor]) -> None:
    _, seg, editor = case
    _, (k, j, _i) = _seed(seg.labelmap == 1)
    tri = [(j - 20.0, k - 6.0), (j + 20.0, k - 6.0), (j, k + 6.0)]  # sagittal plane: (j, k)
    before, after = _commit_undo_redo(editor, scissors(seg, tri, ViewAxis.SAGITTAL, 2,
                                                       op=ScissorsOp.FILL_INSIDE))
    changed = after != before
    assert changed.any() and np.all(after[changed] == 2)
    assert np.all(changed.any(axis=(0, 1)))  # every sagittal slice (no depth: whole volume)
    editor.undo()
    before, after = _commit_undo_redo(editor, scissors(seg, tri, ViewAxis.SAGITTAL, 1,
                                                       op=ScissorsOp.ERASE_OUTSIDE))
    assert (after == 1).sum() < (before == 1).sum()
    kk, jj = np.nonzero((after == 1).any(axis=2))
    assert kk.min() >= k - 6 and kk.max() <= k + 6 and jj.min() >= j - 20 and jj.max() <= j + 20


def test_fill_between_slices_recovers_real_tumour(
        case: tuple[Volume, Segmentation, SegmentEditor]) -> None:
    _, seg, editor = case
    full = seg.labelmap.copy()
    ks = np.flatnonzero(full.any(axis=(1, 2)))
    keep = sorted({*range(int(ks[0]), int(ks[-1]) + 1, 4), int(ks[-1])})
    seg.labelmap[:] = 0
    seg.labelmap[keep] = full[keep]
    sparse_dice = dice(seg.labelmap == 1, full == 1)
    before, after = _commit_undo_redo(editor, fill_between_slices(seg, 1, ViewAxis.AXIAL))
    assert np.array_equal(after[keep], before[keep])  # drawn slices untouched
    result = dice(after == 1, full == 1)
    assert sparse_dice < 0.5 and result > 0.95, (sparse_dice, result)


def test_islands_keep_largest_remove_small_split(
        case: tuple[Volume, Segmentation, SegmentEditor]) -> None:
    _, seg, editor = case
    tumour = seg.labelmap == 1
    seg.labelmap[2:4, 5:8, 5:8] = 1  # a small far island: 18 voxels
    seg.labelmap[50:52, 180:190, 180:190] = 1  # a larger one: 200 voxels
    _, after = _commit_undo_redo(editor, keep_largest_island(seg, 1))
    assert np.array_equal(after == 1, tumour)
    editor.undo()
    vox = float(np.prod(seg.geometry.spacing))
    _, after = _commit_undo_redo(editor, remove_small_islands(seg, 1, 50 * vox))
    assert not after[2:4, 5:8, 5:8].any() and np.all(after[50:52, 180:190, 180:190] == 1)
    editor.undo()
    _before, after = _commit_undo_redo(editor, split_islands(seg, 1))
    assert [s.name for s in seg.segments] == ["Tumour", "Other", "Tumour 2", "Tumour 3"]
    assert np.array_equal(after == 1, tumour)
    assert np.all(after[50:52, 180:190, 180:190] == 3) and np.all(after[2:4, 5:8, 5:8] == 4)


def test_median_and_closing(case: tuple[Volume, Segmentation, SegmentEditor]) -> None:
    _, seg, editor = case
    _, (k, j, i) = _seed(seg.labelmap == 1)
    seg.labelmap[k, j, i] = 0  # a pinhole inside
    seg.labelmap[k, 5, 5] = 1  # a speck outside
    before, after = _commit_undo_redo(editor, closing(seg, 1, 3.0))
    assert after[k, j, i] == 1 and np.all(after[before == 1] == 1)  # closing only adds
    editor.undo()
    before, after = _commit_undo_redo(editor, median_smooth(seg, 1, 3.0))
    assert after[k, 5, 5] == 0 and after[k, j, i] == 1


def test_grow_and_shrink_in_mm(case: tuple[Volume, Segmentation, SegmentEditor]) -> None:
    _, seg, editor = case
    sp = spacing_kji(seg.geometry)
    mask = seg.labelmap == 1
    _, after = _commit_undo_redo(editor, grow_shrink(seg, 1, 5.0))
    expected = ndimage.distance_transform_edt(~mask, sampling=sp) <= 5.0 + 1e-6
    assert np.array_equal(after == 1, expected)
    editor.undo()
    _before, after = _commit_undo_redo(editor, grow_shrink(seg, 1, -4.0))
    expected = mask & (ndimage.distance_transform_edt(mask, sampling=sp) > 4.0 + 1e-6)
    assert np.array_equal(after == 1, expected)
    assert (after == 1).sum() < mask.sum()


def test_segment_table_ops_are_undoable(
        case: tuple[Volume, Segmentation, SegmentEditor]) -> None:
    _, seg, editor = case
    row = editor.add_segment("Node")
    assert row.label == 3 and editor.active_label == 3 and seg.segment(3).name == "Node"
    _commit_undo_redo(editor, rename_segment(seg, 3, "Lymph node"))
    _commit_undo_redo(editor, recolor_segment(seg, 3, (1, 2, 3)))
    assert seg.segment(3).color == (1, 2, 3) and seg.segment(3).name == "Lymph node"
    before = seg.labelmap.copy()
    editor.active_label = 1
    edit = editor.delete_segment(1)
    assert edit is not None and not (seg.labelmap == 1).any()
    assert [s.label for s in seg.segments] == [2, 3] and editor.active_label == 2
    editor.undo()
    assert np.array_equal(seg.labelmap, before) and seg.segment(1).name == "Tumour"
    editor.undo()
    editor.undo()
    editor.undo()
    assert [s.label for s in seg.segments] == [1, 2]
