"""Rulers and edited RECIST axes without Qt: the annotations, their file, the gesture logic and
their undo steps in the editor, on the real STS_008 CT and its reference mask."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseg_gui.core.annotations import (
    Annotations,
    AxisName,
    Ruler,
    annotations_file,
    effective_recist,
    load_annotations,
    study_key,
)
from medseg_gui.core.measurements import measure_segment
from medseg_gui.core.segmentation import Segment, Segmentation
from medseg_gui.core.volume import Volume
from medseg_gui.editing.annotations import AnnotationStore
from medseg_gui.editing.editor import SegmentEditor
from medseg_gui.editing.measure_edit import (
    Kind,
    LineId,
    MeasureGesture,
    measure_lines,
    pick,
)
from medseg_gui.io.label_nifti import read_label_nifti
from medseg_gui.io.loader import load_volume


@pytest.fixture(scope="module")
def sts(shared_data: Path) -> tuple[Volume, Segmentation]:
    ct = load_volume(shared_data / "ibsi_sts/dicom/STS_008/CT/image")
    gt = read_label_nifti(shared_data / "ibsi_sts/nifti/STS_008/CT_mask.nii.gz")
    return ct, Segmentation(gt.labelmap.copy(), ct.geometry, [Segment(1, "GTV")])


def _px(world: tuple[float, float, float]) -> tuple[float, float]:
    """An axial view at 0.5 mm per pixel: x, y in pixels from L and P."""
    return world[0] / 0.5, world[1] / 0.5


def test_annotations_round_trip_through_the_study_file(sts: tuple[Volume, Segmentation]) -> None:
    ct, _ = sts
    assert study_key(ct) == ct.info.series_uid
    store = AnnotationStore.of_study(ct)
    assert store.notes == Annotations() and store.path == annotations_file(ct)
    seen: list[Annotations] = []
    store.add_listener(seen.append)
    ruler = Ruler.new((0.0, 0.0, 1.0), (3.0, 4.0, 1.0))
    assert ruler.length_mm == pytest.approx(5.0) and ruler.by and ruler.at.endswith("Z")
    store.replace(Annotations().with_ruler(ruler))
    assert seen == [store.notes]
    # On disk at once (a crash loses nothing), and what a new session of the study reads.
    assert load_annotations(annotations_file(ct)) == store.notes
    doc = json.loads(annotations_file(ct).read_text())
    assert doc["series_uid"] == ct.info.series_uid and doc["rulers"][0]["length_mm"] == 5.0
    assert AnnotationStore.of_study(ct).notes == store.notes
    # A damaged file is set aside, never overwritten, and the study starts without annotations.
    annotations_file(ct).write_text("{not json")
    again = AnnotationStore.of_study(ct)
    assert again.notes == Annotations() and "not a readable annotations file" in again.error
    assert annotations_file(ct).with_suffix(".unreadable").read_text() == "{not json"


def test_gesture_draws_moves_and_deletes_rulers() -> None:
    g = MeasureGesture()
    notes = Annotations()
    # A press on nothing starts a ruler; its release is one "Add ruler" step.
    g.press((10.0, 10.0, 5.0), None, [])
    assert g.move((40.0, 50.0, 5.0))
    (preview,) = g.preview([])
    assert preview.length_mm == pytest.approx(50.0)
    name, notes = g.release(notes, [])  # type: ignore[misc]
    assert name == "Add ruler" and len(notes.rulers) == 1
    (ruler,) = notes.rulers
    assert (ruler.start, ruler.end) == ((10.0, 10.0, 5.0), (40.0, 50.0, 5.0))
    assert g.selected == LineId.of_ruler(ruler.id)
    # A click (no drag) adds nothing and clears the selection.
    g.press((0.0, 0.0, 5.0), None, [])
    assert g.release(notes, []) is None and g.selected is None
    lines = measure_lines(notes)
    # Picking: the end point within 8 px wins over the body; the body within 5 px selects.
    assert pick(lines, _px((40.0, 52.0, 5.0)), _px).end == 1  # type: ignore[union-attr]
    body = pick(lines, _px((25.0, 30.5, 5.0)), _px)
    assert body is not None and body.end is None and body.line.kind is Kind.RULER
    assert pick(lines, _px((25.0, 40.0, 5.0)), _px) is None
    # Dragging the end moves only that end: "Move ruler".
    g.press((40.0, 52.0, 5.0), pick(lines, _px((40.0, 52.0, 5.0)), _px), lines)
    g.move((70.0, 10.0, 5.0))
    name, notes = g.release(notes, lines)  # type: ignore[misc]
    assert name == "Move ruler"
    assert notes.rulers[0].start == (10.0, 10.0, 5.0) and notes.rulers[0].end == (70.0, 10.0, 5.0)
    assert notes.rulers[0].id == ruler.id
    # Escape drops a drag; Delete removes the selected ruler.
    lines = measure_lines(notes)
    g.press((70.0, 10.0, 5.0), pick(lines, _px((70.0, 10.0, 5.0)), _px), lines)
    g.move((90.0, 10.0, 5.0))
    assert g.cancel() and g.release(notes, lines) is None
    name, notes = g.delete(notes)  # type: ignore[misc]
    assert name == "Delete ruler" and notes.rulers == ()


def test_gesture_edits_and_resets_a_recist_axis(sts: tuple[Volume, Segmentation]) -> None:
    ct, seg = sts
    recist = measure_segment(seg, 1, ct).recist
    assert recist is not None and recist.short is not None
    notes = Annotations()
    axes = [effective_recist(1, recist, notes)]
    lines = measure_lines(notes, axes)
    assert [(ln.id.axis, ln.edited) for ln in lines] == [(AxisName.LONG, False),
                                                         (AxisName.SHORT, False)]
    g = MeasureGesture()
    end = recist.long.end
    moved = (end[0] + 8.0, end[1], end[2])
    g.press(end, pick(lines, _px(end), _px), lines)
    g.move(moved)
    assert g.preview(lines)[0].edited
    name, notes = g.release(notes, lines)  # type: ignore[misc]
    assert name == "Edit RECIST long axis"
    read = effective_recist(1, recist, notes)
    assert read.long_edit is not None and read.short_edit is None
    assert read.long is not None and read.long.start == recist.long.start
    assert read.long.end == moved
    assert read.long.length_mm == pytest.approx(float(np.linalg.norm(
        np.subtract(moved, recist.long.start))))
    assert read.short == recist.short  # the other axis stays the computed one
    # Delete on the selected edited axis resets it; on a computed axis it does nothing.
    name, reset = g.delete(notes)  # type: ignore[misc]
    assert name == "Reset RECIST long axis"
    assert effective_recist(1, recist, reset).long == recist.long
    assert g.delete(reset) is None


def test_annotation_steps_undo_and_redo_in_the_editor(sts: tuple[Volume, Segmentation]) -> None:
    ct, ref = sts
    seg = Segmentation(ref.labelmap.copy(), ref.geometry, list(ref.segments))
    editor = SegmentEditor(seg, ct.array)
    editor.annotations = AnnotationStore.of_study(ct)
    first = Annotations().with_ruler(Ruler.new((0.0, 0.0, 0.0), (10.0, 0.0, 0.0)))
    assert editor.change_annotations("Add ruler", first) is not None
    assert editor.change_annotations("Add ruler", first) is None  # no change, no step
    k, j, i = (int(v) for v in np.argwhere(seg.labelmap == 1)[0])
    editor.begin_stroke([i, j, k], erase=True)
    editor.end_stroke()  # a voxel edit between the two ruler steps
    second = first.without_ruler(first.rulers[0].id)
    editor.change_annotations("Delete ruler", second)
    assert editor.history.undo_name() == "Delete ruler"
    assert editor.intervals and len(editor.intervals) == 1  # only the stroke is editing time
    editor.undo()
    assert editor.annotations.notes == first
    assert load_annotations(annotations_file(ct)) == first  # the file follows undo
    editor.undo()  # the stroke
    assert editor.annotations.notes == first
    editor.undo()
    assert editor.annotations.notes == Annotations() and not editor.history.can_undo()
    editor.redo()
    assert editor.annotations.notes == first
    with editor.group("Two rulers"):
        editor.change_annotations("a", first.with_ruler(Ruler.new((1.0, 1.0, 0.0),
                                                                  (2.0, 2.0, 0.0))))
        two = editor.annotations.notes.with_ruler(Ruler.new((5.0, 5.0, 0.0), (9.0, 5.0, 0.0)))
        editor.change_annotations("b", two)
    assert editor.history.undo_name() == "Two rulers"
    editor.undo()
    assert editor.annotations.notes == first
