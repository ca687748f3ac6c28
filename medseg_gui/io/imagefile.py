"""NIfTI, NRRD and MetaImage through SimpleITK.

ITK reads every format into LPS world coordinates (it flips NIfTI's RAS x and y on read and back
on write), which is the convention of :class:`~medseg_gui.core.geometry.Geometry`; nothing else
in the app needs to know about RAS.
"""

from __future__ import annotations

import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medseg_gui.core.volume import StudyInfo, Volume, geometry_of, to_sitk
from medseg_gui.io.errors import LoadError

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def image_suffix(path: str | Path) -> str | None:
    """The image-file suffix of ``path`` (``".nii.gz"``...), or ``None`` if it has none."""
    name = str(path).lower()
    return next((s for s in IMAGE_SUFFIXES if name.endswith(s)), None)


def _nifti_problem(path: Path) -> str | None:
    """Why a NIfTI file is incomplete, or ``None``.

    ITK's NIfTI reader returns whatever voxels it got from a truncated file without an error
    (seen with SimpleITK 2.5), which would silently show a part-empty study; so check the gzip
    stream's end and checksum and that the file holds all the voxels its header promises.
    """
    head = b""
    total = 0
    with open(path, "rb") as f:
        if path.name.lower().endswith(".gz"):
            inflate = zlib.decompressobj(wbits=31)  # gzip framing: checks CRC32 and length
            try:
                while chunk := f.read(1 << 20):
                    out = inflate.decompress(chunk)
                    head = head if len(head) >= 540 else (head + out)[:540]
                    total += len(out)
            except zlib.error as exc:
                return f"corrupt gzip data ({exc})"
            if not inflate.eof:
                return "the compressed file is truncated (no end-of-stream marker)"
        else:
            head = f.read(540)
            total = os.fstat(f.fileno()).st_size
    if len(head) < 348:
        return "file is shorter than a NIfTI header"
    for order in "<>":
        if struct.unpack(order + "i", head[:4])[0] == 348:
            dims = struct.unpack(order + "8h", head[40:56])
            bitpix = struct.unpack(order + "h", head[72:74])[0]
            offset = int(struct.unpack(order + "f", head[108:112])[0])
            break
        if struct.unpack(order + "i", head[:4])[0] == 540:
            bitpix = struct.unpack(order + "h", head[14:16])[0]
            dims = struct.unpack(order + "8q", head[16:80])
            offset = struct.unpack(order + "q", head[168:176])[0]
            break
    else:
        return "not a NIfTI header (bad sizeof_hdr)"
    ndim = dims[0]
    if not 1 <= ndim <= 7 or any(d < 1 for d in dims[1 : ndim + 1]):
        return f"invalid dimensions {dims[1 : ndim + 1]} in header"
    expected = offset + int(np.prod(dims[1 : ndim + 1], dtype=np.int64)) * bitpix // 8
    if total < expected:
        return f"file is truncated: {total} bytes of voxel data where the header needs {expected}"
    return None


def read_image(path: str | Path) -> Volume:
    """Read a 3D NIfTI/NRRD/MHA file (a 2D image is read as one slice).

    Raises
    ------
    LoadError
        The file is missing, corrupt, not an image, 4D or has vector pixels.
    """
    p = Path(path)
    if not p.is_file():
        raise LoadError(p, "no such file")
    if image_suffix(p) in (".nii", ".nii.gz"):
        problem = _nifti_problem(p)
        if problem:
            raise LoadError(p, f"not a readable NIfTI file: {problem}")
    try:
        image = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        detail = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
        kind = (image_suffix(p) or p.suffix or "image").lstrip(".").upper()
        raise LoadError(p, f"not a readable {kind} file ({detail[-160:]})") from exc
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise LoadError(p, f"{image.GetNumberOfComponentsPerPixel()}-component (vector/RGB) "
                        "images are not supported; expected a greyscale volume")
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    if image.GetDimension() != 3:
        raise LoadError(p, f"{image.GetDimension()}D image: only 3D volumes can be opened")
    array = sitk.GetArrayFromImage(image)
    try:
        geometry = geometry_of(image)
    except ValueError as exc:
        raise LoadError(p, f"invalid geometry in header: {exc}") from exc
    modality = image.GetMetaData("modality") if image.HasMetaDataKey("modality") else ""
    return Volume(array, geometry, StudyInfo(modality=modality), str(p), ())


def write_image(volume: Volume, path: str | Path, *, compress: bool = True) -> Path:
    """Write ``volume`` atomically (temporary file in the same folder, then rename).

    The format follows the suffix: ``.nii.gz``/``.nii``, ``.nrrd`` or ``.mha``.
    """
    p = Path(path)
    suffix = image_suffix(p)
    if suffix not in (".nii.gz", ".nii", ".nrrd", ".mha"):
        raise LoadError(p, "unsupported output format: use .nii.gz, .nii, .nrrd or .mha")
    p.parent.mkdir(parents=True, exist_ok=True)
    array = volume.array
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    image = to_sitk(array, volume.geometry)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=suffix, dir=p.parent)
    os.close(fd)
    try:
        sitk.WriteImage(image, tmp, useCompression=compress)
        os.replace(tmp, p)
    except RuntimeError as exc:
        raise LoadError(p, f"cannot write image: {str(exc).strip().splitlines()[-1]}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p
