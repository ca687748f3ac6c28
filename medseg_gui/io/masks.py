"""Open a segmentation file of any supported kind onto a study's grid.

Label NIfTI (with or without the segment-table sidecar), 3D Slicer ``.seg.nrrd`` / label NRRD,
DICOM SEG and RTSTRUCT. The GUI, ``medseg export`` and the training queue all open masks here.
"""

from __future__ import annotations

from pathlib import Path

from pydicom.misc import is_dicom

from medseg_gui.core.progress import Progress, check, no_progress, scaled
from medseg_gui.core.segmentation import Segmentation
from medseg_gui.core.volume import Volume
from medseg_gui.io.dicom_index import read_header
from medseg_gui.io.errors import LoadError
from medseg_gui.io.output import check_output

GRID_TOL_MM = 1e-3
MASK_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr")
# What load_mask opens, as file-dialog patterns: DICOM SEG and RTSTRUCT are found by content, so
# ".dcm" is only the usual name (a dialog also offers all files for DICOM without a suffix).
MASK_READ_PATTERNS = (*(f"*{s}" for s in MASK_SUFFIXES), "*.dcm")


def check_mask_output(path: str | Path, *, force: bool = False) -> Path:
    """``path`` if a command may write a mask there (a known suffix; existing only with
    ``force``); otherwise one clear :class:`LoadError`."""
    p = Path(path)
    if not p.name.lower().endswith(MASK_SUFFIXES):
        raise LoadError(p, "unsupported mask format: use .nii.gz (with a .json segment table "
                        "beside it) or .seg.nrrd")
    return check_output(p, force=force)


def save_mask(seg: Segmentation, path: str | Path) -> Path:
    """Write ``seg`` with its segment table (names, codes, source, model), so that the mask
    reopens in the app and exports to DICOM SEG as what it is: ``.seg.nrrd``/``.nrrd`` as
    Slicer's segmentation, otherwise a label NIfTI with its JSON sidecar."""
    p = Path(path)
    if p.name.lower().endswith((".nrrd", ".nhdr")):
        from medseg_gui.io.seg_nrrd import write_seg_nrrd

        return write_seg_nrrd(seg, p, overwrite=True)
    from medseg_gui.io.label_nifti import write_label_nifti

    return write_label_nifti(seg, p, overwrite=True)


def load_mask(path: str | Path, volume: Volume, progress: Progress = no_progress) -> Segmentation:
    """Open a mask (label NIfTI/MHA, .seg.nrrd/.nrrd, DICOM SEG or RTSTRUCT) on ``volume``'s grid.

    The mask must already be on that grid (to ``GRID_TOL_MM``, the float32 precision of NIfTI
    headers): nothing is resampled, cropped or shifted. ``progress`` may cancel between the
    reader's steps (per segment of a DICOM SEG, per contour of an RTSTRUCT, before and after a
    label file), so a load the user replaced or cancelled stops there.

    Raises
    ------
    LoadError
        Unknown kind, another grid, or overlapping segments that one label map cannot hold.
    Cancelled
        ``progress`` said stop.
    """
    p = Path(path)
    if not p.is_file():
        raise LoadError(p, "no such mask file")
    check(progress, 0.0, f"Reading {p.name}")
    name = p.name.lower()
    if name.endswith((".nii", ".nii.gz", ".mha", ".mhd")):
        from medseg_gui.io.label_nifti import read_label_nifti

        layers = [read_label_nifti(p)]
    elif name.endswith((".nrrd", ".nhdr")):
        from medseg_gui.io.seg_nrrd import read_seg_nrrd

        layers = read_seg_nrrd(p)
    elif is_dicom(str(p)):
        header = read_header(p)
        if header is None or isinstance(header, str):
            raise LoadError(p, header or "not a DICOM file")
        if str(header.get("Modality", "")) == "RTSTRUCT":
            from medseg_gui.io.rtstruct import read_rtstruct

            layers = [read_rtstruct(p, volume.geometry, progress=scaled(progress, 0.0, 0.95))
                      .segmentation]
        else:
            from medseg_gui.io.dicom_seg import read_dicom_seg

            layers = read_dicom_seg(p, volume.geometry, progress=scaled(progress, 0.0, 0.95))
    else:
        raise LoadError(p, "unknown mask format: use .nii.gz, .seg.nrrd, .mha, DICOM SEG or "
                        "RTSTRUCT")
    if len(layers) > 1:
        raise LoadError(p, f"segments overlap ({len(layers)} layers); one label map cannot hold "
                        "them: export each layer separately")
    check(progress, 1.0, f"Read {p.name}")
    seg = layers[0]
    if not seg.geometry.same_grid(volume.geometry, tol=GRID_TOL_MM):
        raise LoadError(p, f"mask grid {seg.geometry.to_dict()} is not the study's grid "
                        f"{volume.geometry.to_dict()}; resample it explicitly first")
    return Segmentation(seg.labelmap, volume.geometry, seg.segments)
