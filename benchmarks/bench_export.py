"""Write and read a DICOM SEG for a 512 x 512 x 300 CT, ours against highdicom's plain usage.

The study is built from real CT: the slices of ``crlm_unlabeled`` (CRLM-CT-1004 and 1006, real
pixel data) repeated in order to 300 slices, given new UIDs and consecutive 5 mm positions, and
written to a temporary folder. Masks are real-intensity bands of that CT: one segment (soft
tissue, 0..100 HU) or five (air, fat, soft tissue, enhancing, bone).

Baseline, in the same process: highdicom's straightforward call as its documentation shows it:
``pydicom.dcmread`` every source file, ``hd.seg.Segmentation(source_images, pixel_array=<bool
(frames, rows, cols, segments)>, BINARY, ...)`` then ``save_as``; reading is
``hd.seg.segread(path).get_volume(combine_segments=False)``. Ours: ``write_dicom_seg`` (reads
source headers only, passes the label map) and ``read_dicom_seg`` onto the CT grid. Median of
``--repeat`` runs after one warm-up. A ratio < 1 means ours is faster.

Usage: python benchmarks/bench_export.py [--data ../shared/data] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.uid import generate_uid
from timing import median_seconds  # benchmarks/timing.py (scripts run with benchmarks/ on sys.path)

from medseg_gui.core.segmentation import Segment, Segmentation, SegmentSource
from medseg_gui.io.dicom_seg import read_dicom_seg, write_dicom_seg
from medseg_gui.io.loader import load_volume

ROOT = Path(__file__).resolve().parent.parent
BANDS = [(-1000, -500, "Air"), (-150, -50, "Fat"), (0, 100, "Soft tissue"),
         (100, 300, "Enhancing"), (300, 3000, "Bone")]


def build_study(data: Path, folder: Path, n: int = 300) -> list[Path]:
    src = sorted((data / "crlm_unlabeled/CRLM-CT-1004/image").glob("*.dcm"))
    src += sorted((data / "crlm_unlabeled/CRLM-CT-1006/image").glob("*.dcm"))
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    out = []
    for k in range(n):
        ds = pydicom.dcmread(src[k % len(src)])
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.ImagePositionPatient = [-198.2, -204.0, -175.0 + 5.0 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = -175.0 + 5.0 * k
        ds.InstanceNumber = k + 1
        ds.SpacingBetweenSlices = 5.0
        ds.PixelSpacing = [0.796875, 0.796875]  # the two source CTs differ slightly
        path = folder / f"{k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        out.append(path)
    return out


def baseline_write(files: list[Path], masks: np.ndarray, path: Path) -> None:
    sources = [pydicom.dcmread(f) for f in files]
    sources.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    descriptions = [hd.seg.SegmentDescription(
        segment_number=i + 1, segment_label=f"Segment {i + 1}",
        segmented_property_category=hd.sr.CodedConcept("49755003", "SCT", "Morph. abnormal"),
        segmented_property_type=hd.sr.CodedConcept("108369006", "SCT", "Neoplasm"),
        algorithm_type="MANUAL") for i in range(masks.shape[-1])]
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=masks, segmentation_type="BINARY",
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=1,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="x",
        manufacturer_model_name="x", software_versions="1", device_serial_number="1")
    seg.save_as(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "ct").mkdir()
        files = build_study(args.data, tmp / "ct")
        ct = load_volume(tmp / "ct")
        print(f"study: {'x'.join(map(str, ct.geometry.size_ijk))} real CT slices in {tmp}")
        rows = []
        for count in (1, 5):
            bands = BANDS[2:3] if count == 1 else BANDS
            lm = np.zeros(ct.shape, np.uint8)
            for n, (lo, hi, _) in enumerate(bands, start=1):
                lm[(ct.array >= lo) & (ct.array < hi)] = n
            seg = Segmentation(lm, ct.geometry, [
                Segment(n, name, source=SegmentSource.AUTOMATIC, model="bench:1")
                for n, (_, _, name) in enumerate(bands, start=1)])
            masks = np.stack([lm == n for n in range(1, count + 1)], axis=-1)
            ours_p, base_p = tmp / f"ours{count}.dcm", tmp / f"base{count}.dcm"
            t_ow = median_seconds(lambda s=seg, p=ours_p: write_dicom_seg(
                s, files, p, overwrite=True), args.repeat)
            t_bw = median_seconds(lambda m=masks, p=base_p: baseline_write(
                files, m, p), args.repeat)
            t_or = median_seconds(lambda p=ours_p: read_dicom_seg(
                p, ct.geometry), args.repeat)
            t_br = median_seconds(lambda p=base_p: hd.seg.segread(p).get_volume(
                combine_segments=False), args.repeat)
            (back,) = read_dicom_seg(ours_p, ct.geometry)
            assert np.array_equal(back.labelmap, lm), "round trip is not voxel-identical"
            size_o, size_b = ours_p.stat().st_size / 2**20, base_p.stat().st_size / 2**20
            rows.append((count, "write", t_ow, t_bw, size_o, size_b))
            rows.append((count, "read", t_or, t_br, size_o, size_b))
        print(f"{'segments':>8} {'op':>5} {'ours s':>8} {'highdicom s':>11} {'ratio':>6} "
              f"{'ours MiB':>9} {'hd MiB':>8}")
        for count, op, t_o, t_b, s_o, s_b in rows:
            print(f"{count:>8} {op:>5} {t_o:>8.2f} {t_b:>11.2f} {t_o / t_b:>6.2f} {s_o:>9.1f} "
                  f"{s_b:>8.1f}")


if __name__ == "__main__":
    main()
