"""``medseg prompt`` on real CT with the shipped promptable model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg_gui.cli import main
from medseg_gui.core.metrics import dice
from medseg_gui.core.segmentation import Segment, Segmentation, SegmentSource
from medseg_gui.io.label_nifti import read_label_nifti, write_label_nifti
from medseg_gui.io.loader import load_volume
from medseg_gui.io.masks import load_mask
from medseg_gui.training.interactive_eval import region_centre

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "resources" / "demo" / "STS_008"


@pytest.fixture(scope="module")
def demo() -> tuple[object, np.ndarray, str]:
    vol = load_volume(DEMO / "dicom" / "image")
    ref = load_mask(DEMO / "gtv_mask.nii.gz", vol).labelmap > 0
    c = region_centre(ref, vol.geometry)
    assert c is not None
    return vol, ref, ",".join(f"{v:.2f}" for v in c)


def test_a_click_in_the_demo_tumour_segments_it(demo: tuple, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    _vol, ref, centre = demo
    out = tmp_path / "mask.nii.gz"
    assert main(["prompt", str(DEMO / "dicom" / "image"), "-o", str(out), "--point", centre]) == 0
    assert "segmented" not in capsys.readouterr().err
    seg = read_label_nifti(out)
    assert dice(seg.labelmap == 1, ref) > 0.5  # the shipped 1.0.0 scores 0.69 on this case
    row = seg.segments[0]
    assert row.source is SegmentSource.SEMIAUTOMATIC and row.model.startswith("prompt-unet:")
    again = tmp_path / "again.nii.gz"
    assert main(["prompt", str(DEMO / "dicom" / "image"), "-o", str(again), "--point", centre]) == 0
    assert np.array_equal(read_label_nifti(again).labelmap, seg.labelmap)  # stateless


def test_bad_prompts_end_in_one_line(demo: tuple, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "m.nii.gz")
    study = str(DEMO / "dicom" / "image")
    for extra, why in ((["--point", "999,0,0"], "outside the image"),
                       (["--point", "1,2"], "X,Y,Z"),
                       (["--box", "170,0,-200,170,20,-200"], "empty"),
                       (["--negative", demo[2]], "only negative"),
                       ([], "no prompt")):
        assert main(["prompt", study, "-o", out, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and why in err[0] and "Traceback" not in err[0]
    assert not Path(out).exists()


def test_a_click_in_air_says_so_and_never_crashes(shared_data: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    study = shared_data / "totalseg_example" / "example_ct_dicom"
    vol = load_volume(study)
    k, j, i = np.argwhere(vol.array[:, :40, :40] < -990)[0]
    air = vol.geometry.index_to_world([int(i), int(j), int(k)])
    out = tmp_path / "air.nii.gz"
    code = main(["prompt", str(study), "-o", str(out), "--point",
                 ",".join(f"{v:.2f}" for v in air)])
    assert code == 0
    captured = capsys.readouterr()
    seg = read_label_nifti(out)
    if (seg.labelmap > 0).any():
        assert int((seg.labelmap > 0).sum()) < 2000  # a speck at most, and it says why
        assert "check the mask (the click at" in captured.out + captured.err
        assert "lies in air" in captured.out + captured.err
    else:
        assert "no object" in captured.err and "air" in captured.err


def test_refining_a_mask_never_changes_its_other_segments(demo: tuple, tmp_path: Path) -> None:
    vol, ref, centre = demo
    seg = Segmentation.empty(vol.geometry, [Segment(1, "Tumour"), Segment(2, "Muscle")])
    ring = np.zeros(vol.shape, bool)
    kk, jj, ii = np.argwhere(ref).mean(axis=0).astype(int)
    ring[kk - 3:kk + 3, jj - 20:jj + 20, ii - 20:ii + 20] = True
    seg.labelmap[ring & ~ref] = 2  # a second segment hugging the tumour
    prior = tmp_path / "prior.nii.gz"
    write_label_nifti(seg, prior)
    out = tmp_path / "refined.nii.gz"
    assert main(["prompt", str(DEMO / "dicom" / "image"), "-o", str(out), "--point", centre,
                 "--mask", str(prior), "--label", "1"]) == 0
    refined = read_label_nifti(out)
    assert np.array_equal(refined.labelmap == 2, seg.labelmap == 2)
    assert (refined.labelmap == 1).sum() > 0
    over = tmp_path / "over.nii.gz"
    assert main(["prompt", str(DEMO / "dicom" / "image"), "-o", str(over), "--point", centre,
                 "--mask", str(prior), "--label", "1", "--overwrite-other"]) == 0
    assert (read_label_nifti(over).labelmap == 2).sum() <= (seg.labelmap == 2).sum()


def test_a_scribble_file_prompts_too(demo: tuple, tmp_path: Path) -> None:
    vol, ref, _ = demo
    seg = Segmentation.empty(vol.geometry, [Segment(1, "Scribble")])
    k = int(np.argmax(ref.sum(axis=(1, 2))))
    line = np.zeros(vol.shape, bool)
    line[k] = ref[k]
    line[k] &= np.roll(line[k], 3, axis=1) & np.roll(line[k], -3, axis=1)  # inside, not edges
    rows = np.argwhere(line[k])
    keep = rows[:, 0] == rows[len(rows) // 2, 0]  # one row of the tumour: a stroke
    line[k] = False
    line[k][rows[keep, 0], rows[keep, 1]] = True
    seg.labelmap[line] = 1
    path = tmp_path / "scribble.nii.gz"
    write_label_nifti(seg, path)
    out = tmp_path / "from_scribble.nii.gz"
    assert main(["prompt", str(DEMO / "dicom" / "image"), "-o", str(out), "--scribble",
                 str(path)]) == 0
    assert dice(read_label_nifti(out).labelmap == 1, ref) > 0.3
