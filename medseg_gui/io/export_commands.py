"""``medseg export``: write a study's mask as NIfTI, .seg.nrrd, DICOM SEG, RTSTRUCT, STL/OBJ or a
report. Also the one place that opens a mask file of any supported kind onto a study's grid.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pydicom.misc import is_dicom

from medseg_gui.core.segmentation import Segmentation
from medseg_gui.core.volume import Volume
from medseg_gui.io.errors import LoadError

FORMATS = ("nifti", "seg-nrrd", "dicom-seg", "rtstruct", "stl", "obj", "report")
GRID_TOL_MM = 1e-3


def load_mask(path: str | Path, volume: Volume) -> Segmentation:
    """Open a mask (label NIfTI, .seg.nrrd/.nrrd, DICOM SEG or RTSTRUCT) on ``volume``'s grid.

    The mask must already be on that grid (to ``GRID_TOL_MM``, the float32 precision of NIfTI
    headers): nothing is resampled, cropped or shifted.

    Raises
    ------
    LoadError
        Unknown kind, another grid, or overlapping segments that one label map cannot hold.
    """
    p = Path(path)
    if not p.is_file():
        raise LoadError(p, "no such mask file")
    name = p.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        from medseg_gui.io.label_nifti import read_label_nifti

        layers = [read_label_nifti(p)]
    elif name.endswith((".nrrd", ".nhdr")):
        from medseg_gui.io.seg_nrrd import read_seg_nrrd

        layers = read_seg_nrrd(p)
    elif is_dicom(str(p)):
        import pydicom

        modality = str(pydicom.dcmread(p, stop_before_pixels=True).get("Modality", ""))
        if modality == "RTSTRUCT":
            from medseg_gui.io.rtstruct import read_rtstruct

            layers = [read_rtstruct(p, volume.geometry).segmentation]
        else:
            from medseg_gui.io.dicom_seg import read_dicom_seg

            layers = read_dicom_seg(p, volume.geometry)
    else:
        raise LoadError(p, "unknown mask format: use .nii.gz, .seg.nrrd, DICOM SEG or RTSTRUCT")
    if len(layers) > 1:
        raise LoadError(p, f"segments overlap ({len(layers)} layers); one label map cannot hold "
                        "them: export each layer separately")
    seg = layers[0]
    if not seg.geometry.same_grid(volume.geometry, tol=GRID_TOL_MM):
        raise LoadError(p, f"mask grid {seg.geometry.to_dict()} is not the study's grid "
                        f"{volume.geometry.to_dict()}; resample it explicitly first")
    return Segmentation(seg.labelmap, volume.geometry, seg.segments)


def export(volume: Volume, seg: Segmentation, fmt: str, out: str | Path, *,
           overwrite: bool = False, correction: dict[str, Any] | None = None) -> list[Path]:
    """Write ``seg`` (on ``volume``'s grid) in format ``fmt``; returns the files written."""
    if fmt == "nifti":
        from medseg_gui.io.label_nifti import sidecar_path, write_label_nifti

        return [write_label_nifti(seg, out, overwrite=overwrite), sidecar_path(out)]
    if fmt == "seg-nrrd":
        from medseg_gui.io.seg_nrrd import write_seg_nrrd

        return [write_seg_nrrd(seg, out, overwrite=overwrite)]
    if fmt in ("dicom-seg", "rtstruct"):
        from medseg_gui.io.dicom_seg import source_files, write_dicom_seg
        from medseg_gui.io.rtstruct_write import write_rtstruct

        writer = write_dicom_seg if fmt == "dicom-seg" else write_rtstruct
        return [writer(seg, source_files(volume), out, overwrite=overwrite)]
    if fmt in ("stl", "obj"):
        from medseg_gui.io.surfaces import export_surfaces

        kind = "obj" if fmt == "obj" or str(out).lower().endswith(".obj") else "stl"
        return export_surfaces(seg, out, kind, overwrite=overwrite)
    if fmt == "report":
        from medseg_gui.io.report import build_report, write_report

        return write_report(build_report(seg, volume, correction=correction), out,
                            overwrite=overwrite)
    raise LoadError(out, f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")


def cmd_export(args: argparse.Namespace) -> int:
    from medseg_gui.io.loader import load_volume

    correction: dict[str, Any] | None = None
    if args.correction:
        try:
            correction = dict(json.loads(args.correction))
        except (ValueError, TypeError) as exc:
            raise LoadError("--correction", f"not a JSON object ({exc})") from exc
    volume = load_volume(args.study, series_uid=args.series)
    seg = load_mask(args.mask, volume)
    written = export(volume, seg, args.format, args.output, overwrite=args.force,
                     correction=correction)
    for path in written:
        print(f"wrote {path}")
    return 0


def add_commands(subparsers: Any) -> None:
    """Register ``export`` on the ``medseg`` sub-command parser."""
    p = subparsers.add_parser("export", help="write a study's mask as NIfTI, .seg.nrrd, DICOM "
                              "SEG, RTSTRUCT, STL/OBJ surfaces or a report")
    p.add_argument("study", help="the study the mask belongs to: DICOM folder/file or image")
    p.add_argument("--mask", required=True,
                   help="label map (.nii.gz, .seg.nrrd), DICOM SEG or RTSTRUCT on the study grid")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("-o", "--output", required=True,
                   help="output file (a folder for stl; report writes OUT.json and OUT.csv)")
    p.add_argument("--series", help="SeriesInstanceUID to pick from a folder of several")
    p.add_argument("--correction", help='correction effort as JSON, e.g. {"edited_voxels": 120}')
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.set_defaults(func=cmd_export)
