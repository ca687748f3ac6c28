"""NIfTI, NRRD and MetaImage through SimpleITK.

ITK reads every format into LPS world coordinates (it flips NIfTI's RAS x and y on read and back
on write), which is the convention of :class:`~medseg_gui.core.geometry.Geometry`; nothing else
in the app needs to know about RAS.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

from medseg_gui.core.volume import StudyInfo, Volume, geometry_of, to_sitk
from medseg_gui.io.errors import LoadError
from medseg_gui.io.image_header import check_image_file
from medseg_gui.io.output import atomic_output

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def image_suffix(path: str | Path) -> str | None:
    """The image-file suffix of ``path`` (``".nii.gz"``...), or ``None`` if it has none."""
    name = str(path).lower()
    return next((s for s in IMAGE_SUFFIXES if name.endswith(s)), None)


def itk_reason(exc: RuntimeError) -> str:
    """The reason in an ITK exception's text, without its source location and object address.

    ITK's first line is ``Exception thrown in ...: /path/itkNrrdImageIO.cxx:935:``; the reason is
    the last line, behind prefixes such as ``ITK ERROR: NrrdImageIO(0x55...):`` or ``[nrrd] ...:``.
    """
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    reasons = [ln for ln in lines if not re.search(r"\.(cxx|h|hxx|cpp):\d+:?$", ln)] or lines
    reason = re.sub(r"^(itk::)?(ITK )?ERROR: \w+\(0x[0-9a-fA-F]+\):\s*", "", reasons[-1] if
                    reasons else "unknown ITK error")
    return re.sub(r"^\[\w+\] \w+:\s*", "", reason)[:200]


def read_itk(path: str | Path) -> tuple[sitk.Image, npt.NDArray[np.int64]]:
    """Read an image file with SimpleITK after :func:`check_image_file` has vouched for it.

    The one way image and label-map files are read, so that a truncated mask is refused as a
    truncated study is. Returns the image and the flat indices of voxels that the file holds as
    NaN/Inf where ITK does not keep them (see :func:`check_image_file`).

    Raises
    ------
    LoadError
        The file is missing, truncated, has an impossible header, or ITK cannot read it.
    """
    p = Path(path)
    if not p.is_file():
        raise LoadError(p, "no such file")
    non_finite = check_image_file(p)
    try:
        return sitk.ReadImage(str(p)), non_finite
    except RuntimeError as exc:
        kind = (image_suffix(p) or p.suffix or "image").lstrip(".").upper()
        raise LoadError(p, f"not a readable {kind} file ({itk_reason(exc)})") from exc


def read_image(path: str | Path) -> Volume:
    """Read a 3D NIfTI/NRRD/MHA file (a 2D image is read as one slice).

    Raises
    ------
    LoadError
        The file is missing, corrupt, not an image, 4D or has vector pixels.
    """
    p = Path(path)
    image, non_finite = read_itk(p)
    warnings: list[str] = []
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise LoadError(p, f"{image.GetNumberOfComponentsPerPixel()}-component (vector/RGB) "
                        "images are not supported; expected a greyscale volume")
    if image.GetDimension() == 2:
        # One slice is still worth viewing, but volumes and distances along z are invented.
        image = sitk.JoinSeries(image)
        warnings.append("2D image: its slice thickness is unknown and shown as 1 mm; volumes "
                        "(ml) and distances across slices are not real")
    if image.GetDimension() != 3:
        raise LoadError(p, f"{image.GetDimension()}D image: only 3D volumes can be opened")
    array = sitk.GetArrayFromImage(image)
    try:
        geometry = geometry_of(image)
    except ValueError as exc:
        raise LoadError(p, f"invalid geometry in header: {exc}") from exc
    if array.dtype.kind == "f":
        array, note = _replace_non_finite(array, non_finite)
        warnings += note
    modality = image.GetMetaData("modality") if image.HasMetaDataKey("modality") else ""
    return Volume(array, geometry, StudyInfo(modality=modality), str(p), tuple(warnings))


def _replace_non_finite(array: npt.NDArray[Any], known: npt.NDArray[np.int64]
                        ) -> tuple[npt.NDArray[Any], list[str]]:
    """``array`` with NaN/Inf voxels (and those at the flat indices ``known``, which the reader
    made 0) set to its lowest finite value, and a warning naming their count.

    Such voxels usually mark "no data" (outside a resampled field of view). Refusing the file
    would keep the radiologist from a study that is otherwise fine, and keeping them would spoil
    window/level, measurements and the AI (one NaN turns a whole network patch into NaN); the
    lowest value reads as "nothing here" in every window, where 0 would read as water in CT.
    """
    bad = ~np.isfinite(array)
    bad.flat[known] = True
    count = int(bad.sum())
    if not count:
        return array, []
    finite = array[~bad]
    low = float(finite.min()) if finite.size else 0.0
    array = np.where(bad, np.asarray(low, dtype=array.dtype), array)
    return array, [f"{count} voxel(s) are NaN or infinite (not a number); they are shown as the "
                   f"lowest value, {low:g}"]


def write_image(volume: Volume, path: str | Path, *, compress: bool = True) -> Path:
    """Write ``volume`` atomically (temporary file in the same folder, then rename), replacing
    ``path`` if it exists.

    The format follows the suffix: ``.nii.gz``/``.nii``, ``.nrrd`` or ``.mha``.
    """
    p = Path(path)
    suffix = image_suffix(p)
    if suffix not in (".nii.gz", ".nii", ".nrrd", ".mha"):
        raise LoadError(p, "unsupported output format: use .nii.gz, .nii, .nrrd or .mha")
    array = volume.array
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    image = to_sitk(array, volume.geometry)
    with atomic_output(p, overwrite=True, suffix=".part" + suffix) as tmp:
        try:
            sitk.WriteImage(image, str(tmp), useCompression=compress)
        except RuntimeError as exc:
            raise LoadError(p, f"cannot write image: {itk_reason(exc)}") from exc
    return p
