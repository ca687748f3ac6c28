"""``medseg export``: write a study's mask as NIfTI, .seg.nrrd, DICOM SEG, RTSTRUCT, STL/OBJ, a
report or a DICOM SR measurement report."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medseg_gui.core.annotations import Annotations
from medseg_gui.core.segmentation import Segmentation
from medseg_gui.core.volume import Volume
from medseg_gui.io.errors import LoadError
from medseg_gui.io.masks import load_mask

FORMATS = ("nifti", "seg-nrrd", "dicom-seg", "rtstruct", "stl", "obj", "report", "sr")


def export(volume: Volume, seg: Segmentation, fmt: str, out: str | Path, *,
           overwrite: bool = False, correction: dict[str, Any] | None = None,
           seg_path: str | Path | None = None,
           annotations: Annotations | None = None,
           warn: Callable[[str], None] | None = None) -> list[Path]:
    """Write ``seg`` (on ``volume``'s grid) in format ``fmt``; returns the files written.

    ``sr`` references the DICOM SEG ``seg_path`` when given, else writes one beside ``out``.
    ``report`` and ``sr`` also carry the study's ``annotations`` (rulers, edited RECIST axes).
    ``warn`` hears what was written differently from what was asked (an empty segment left
    out of a surface export).
    """
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
        return export_surfaces(seg, out, kind, overwrite=overwrite, warn=warn)
    if fmt == "report":
        from medseg_gui.io.report import build_report, write_report

        return write_report(build_report(seg, volume, correction=correction,
                                         annotations=annotations), out, overwrite=overwrite)
    if fmt == "sr":
        from medseg_gui.io.dicom_seg import source_files
        from medseg_gui.io.dicom_sr import write_measurement_sr

        return write_measurement_sr(seg, volume, source_files(volume), out, seg_path=seg_path,
                                    overwrite=overwrite, annotations=annotations)
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
    notes, source = study_annotations(volume, args.annotations)
    written = export(volume, seg, args.format, args.output, overwrite=args.force,
                     correction=correction, seg_path=args.seg, annotations=notes,
                     warn=lambda message: print(f"warning: {message}", file=sys.stderr))
    for path in written:
        print(f"wrote {path}")
    if args.format in ("report", "sr") and (notes.rulers or notes.axes):
        print(f"with {len(notes.rulers)} ruler(s) and {len(notes.axes)} edited RECIST axis "
              f"(axes) from {source}")
    return 0


def study_annotations(volume: Volume, path: str | None = None
                      ) -> tuple[Annotations, Path | None]:
    """The rulers and edited axes to export: ``path``'s, or the ones the app saved for the
    study (none when it has none), and the file they came from."""
    from medseg_gui.core.annotations import annotations_file, load_annotations

    source = Path(path) if path else annotations_file(volume)
    if source is None:
        return Annotations(), None
    if path and not source.is_file():
        raise LoadError(source, "no such annotations file")
    try:
        return load_annotations(source), source
    except ValueError as exc:
        raise LoadError(source, str(exc).removeprefix(f"{source}: ")) from exc


def add_commands(subparsers: Any) -> None:
    """Register ``export`` on the ``medseg`` sub-command parser."""
    p = subparsers.add_parser("export", help="write a study's mask as NIfTI, .seg.nrrd, DICOM "
                              "SEG, RTSTRUCT, STL/OBJ surfaces, a report or a DICOM SR")
    p.add_argument("study", help="the study the mask belongs to: DICOM folder/file or image")
    p.add_argument("--mask", required=True,
                   help="label map (.nii.gz, .seg.nrrd), DICOM SEG or RTSTRUCT on the study grid")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("-o", "--output", required=True,
                   help="output file (a folder for stl; report writes OUT.json and OUT.csv)")
    p.add_argument("--series", help="SeriesInstanceUID to pick from a folder of several")
    p.add_argument("--correction", help='correction effort as JSON, e.g. {"edited_voxels": 120}')
    p.add_argument("--seg", help="sr: the DICOM SEG of the mask to reference (default: write "
                   "OUT.seg.dcm beside the SR)")
    p.add_argument("--annotations", metavar="FILE",
                   help="report, sr: the rulers and edited RECIST axes to include (default: "
                   "those the app saved for the study, if any)")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.set_defaults(func=cmd_export)
