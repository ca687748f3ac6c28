"""One entry point that opens what the user points at: a DICOM folder or file, or an image."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pydicom.misc import is_dicom

from medseg_gui.core.progress import Progress, no_progress, scaled
from medseg_gui.core.volume import Volume
from medseg_gui.io.dicom_index import (
    choose_image_series,
    index_folder,
    non_image_reason,
    read_header,
)
from medseg_gui.io.dicom_series import GapPolicy, load_series
from medseg_gui.io.errors import LoadError
from medseg_gui.io.imagefile import image_suffix, read_image


def load_volume(
    path: str | Path,
    *,
    series_uid: str | None = None,
    progress: Progress = no_progress,
    gaps: GapPolicy = "warn",
) -> Volume:
    """Open a study as a Volume.

    Parameters
    ----------
    path
        A folder of DICOM files (searched recursively), one DICOM file (its series is loaded from
        the files beside it), or a ``.nii(.gz)``, ``.nrrd``, ``.nhdr``, ``.mha`` or ``.mhd`` file.
    series_uid
        Which series to load when a folder holds several.
    progress
        Progress/cancel callback.
    gaps
        What to do with missing slices: ``"warn"`` (load, blank slices) or ``"error"``.

    Raises
    ------
    LoadError
        Anything wrong with the input, named in one line.
    """
    p = Path(path)
    if not p.exists():
        raise LoadError(p, "no such file or folder")
    if p.is_dir():
        index = index_folder(p, scaled(progress, 0.0, 0.2))
        series = choose_image_series(index, series_uid)
        volume = load_series(series.files, headers=series.headers,
                             progress=scaled(progress, 0.2, 1.0), gaps=gaps, source=p)
        if index.unreadable:
            bad, why = index.unreadable[0]
            note = f"{len(index.unreadable)} unreadable DICOM file(s) skipped, e.g. {bad}: {why}"
            volume = dataclasses.replace(volume, warnings=(*volume.warnings, note))
        return volume
    if image_suffix(p):
        return read_image(p)
    if not is_dicom(str(p)):
        raise LoadError(p, "not a DICOM file (no DICM preamble) and not a NIfTI/NRRD/MHA image")
    header = read_header(p)
    if header is None or isinstance(header, str):
        raise LoadError(p, header or "not a DICOM file")
    not_image = non_image_reason(str(header.get("Modality", "")))
    if not_image is not None:  # a SEG has Rows and frames, but its pixels are a mask
        raise LoadError(p, not_image)
    if "Rows" not in header or "SeriesInstanceUID" not in header:
        kind = str(header.get("Modality", "")) or "unknown object"
        raise LoadError(p, f"DICOM file holds no image ({kind}, no Rows or series UID)")
    if int(header.get("NumberOfFrames", 1) or 1) > 1:
        return load_series([p], progress=progress, gaps=gaps, source=p)
    # A single slice stands for its series: load the siblings that share its series UID.
    index = index_folder(p.parent, scaled(progress, 0.0, 0.2))
    uid = series_uid or str(header.get("SeriesInstanceUID", ""))
    sibling = next(
        (se for se in index.image_series() if se.series_uid == uid and p in se.files), None
    )
    if sibling is None:
        raise LoadError(p, "DICOM file is not an image of a loadable series")
    return load_series(sibling.files, headers=sibling.headers,
                       progress=scaled(progress, 0.2, 1.0), gaps=gaps, source=p.parent)
