"""Check an image file's header against its data before ITK reads it.

ITK trusts headers: its NIfTI reader returns a part-empty volume from a truncated file without an
error (seen with SimpleITK 2.5), NIfTI's zero or NaN voxel sizes become an invented 1 mm, and a
header claiming a huge size makes ITK allocate it before it finds the data missing. So every
image and label file is checked here first, with bounded memory: the sizes the header promises
must fit in the file (or, compressed, in what deflate can expand to and in the machine's memory),
the compressed stream must be complete, and the voxel sizes must be positive numbers.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from medseg_gui.io.errors import LoadError

# Deflate's best case is about 1032:1 (RFC 1951: 258 bytes per 2-bit code); a header that needs
# more bytes than that from its compressed data is wrong whatever the data holds.
MAX_DEFLATE_RATIO = 1032
_CHUNK = 1 << 20

_NRRD_TYPES = {
    **dict.fromkeys(("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8",
                     "uint8_t"), 1),
    **dict.fromkeys(("short", "short int", "signed short", "signed short int", "int16",
                     "int16_t", "ushort", "unsigned short", "unsigned short int", "uint16",
                     "uint16_t"), 2),
    **dict.fromkeys(("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32",
                     "uint32_t", "float"), 4),
    **dict.fromkeys(("longlong", "long long", "long long int", "signed long long",
                     "signed long long int", "int64", "int64_t", "ulonglong",
                     "unsigned long long", "unsigned long long int", "uint64", "uint64_t",
                     "double"), 8),
}
_META_TYPES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4,
               "MET_UINT": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
               "MET_DOUBLE": 8}


@dataclass(frozen=True)
class _Layout:
    """Where a file's voxels are and how many bytes the header says they take."""

    needed: int  # voxel bytes the header promises
    data: Path  # the file holding them
    start: int  # byte offset of the voxels (or of their compressed stream) in ``data``
    compressed: bool  # ``data`` holds a gzip/zlib stream from ``start``
    spacing: tuple[float, ...]  # voxel sizes of the spatial axes, as the header states them
    floats: np.dtype[Any] | None = None  # float voxels to scan for NaN/Inf, at ``skip``
    skip: int = 0  # bytes before the voxels in the (inflated) data


class _NonFinite:
    """Flat indices of NaN/Inf voxels in a stream of float voxels fed in arbitrary chunks."""

    def __init__(self, dtype: np.dtype[Any], skip: int) -> None:
        self.dtype, self.skip, self.carry, self.seen = dtype, skip, b"", 0
        self.found: list[npt.NDArray[np.int64]] = []

    def feed(self, chunk: bytes) -> None:
        if self.skip:
            chunk, self.skip = chunk[self.skip:], max(self.skip - len(chunk), 0)
        chunk = self.carry + chunk
        whole = len(chunk) - len(chunk) % self.dtype.itemsize
        values = np.frombuffer(chunk, self.dtype, whole // self.dtype.itemsize)
        self.found.append(np.flatnonzero(~np.isfinite(values)) + self.seen)
        self.seen += values.size
        self.carry = chunk[whole:]

    def indices(self) -> npt.NDArray[np.int64]:
        return np.concatenate(self.found) if self.found else np.zeros(0, np.int64)


def check_image_file(path: str | Path) -> npt.NDArray[np.int64]:
    """Raise a :class:`LoadError` unless ``path`` holds every voxel its header promises.

    Returns the flat (C-order of ``(k, j, i)``) indices of float voxels the file holds as NaN or
    infinity, for NIfTI, whose ITK reader turns them into 0 without a word; otherwise none.

    Formats other than NIfTI, NRRD and MetaImage, and layouts this check does not model (a
    detached data file list, an unknown voxel type), pass unchecked and are left to ITK.

    Raises
    ------
    LoadError
        Truncated or corrupt data, a header needing more bytes than the file or the machine's
        memory can hold, or a voxel size that is zero, negative or not a number.
    """
    p = Path(path)
    name = p.name.lower()
    try:
        layout: _Layout | None
        if name.endswith((".nii", ".nii.gz")):
            layout = _nifti_layout(p)
        elif name.endswith((".nrrd", ".nhdr")):
            layout = _text_layout(p, _nrrd_fields, "NRRD")
        elif name.endswith((".mha", ".mhd")):
            layout = _text_layout(p, _meta_fields, "MetaImage")
        else:
            return np.zeros(0, np.int64)
        return np.zeros(0, np.int64) if layout is None else _check_layout(p, layout)
    except OSError as exc:
        raise LoadError(p, f"cannot read the file ({exc.strerror or exc})") from exc


def _check_layout(path: Path, layout: _Layout) -> npt.NDArray[np.int64]:
    bad = [s for s in layout.spacing if not (math.isfinite(s) and s > 0)]
    if bad:
        raise LoadError(path, f"the header's voxel size {_mm(layout.spacing)} mm must be "
                        "positive numbers; the image cannot be measured (fix its spacing)")
    _check_memory(path, layout.needed)
    scan = None if layout.floats is None else _NonFinite(layout.floats, layout.skip)
    with open(layout.data, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if not layout.compressed:
            if size - layout.start < layout.needed:
                raise LoadError(path, f"file is truncated: {max(size - layout.start, 0)} bytes of "
                                f"voxel data where the header needs {layout.needed}")
            if scan is not None:
                f.seek(layout.start)
                while chunk := f.read(_CHUNK):
                    scan.feed(chunk)
            return np.zeros(0, np.int64) if scan is None else scan.indices()
        packed = size - layout.start
        if layout.needed > MAX_DEFLATE_RATIO * packed + _CHUNK:
            raise LoadError(path, f"the header needs {layout.needed} bytes of voxels but "
                            f"{packed} compressed bytes cannot expand to that; the header's "
                            "sizes are wrong or the file is truncated")
        f.seek(layout.start)
        got = _inflated_size(path, f, scan)
    if got < layout.needed:
        raise LoadError(path, f"file is truncated: {got} bytes of voxel data where the header "
                        f"needs {layout.needed}")
    return np.zeros(0, np.int64) if scan is None else scan.indices()


def _check_memory(path: Path, needed: int) -> None:
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX: no cheap way to ask
        return
    if needed > memory:
        raise LoadError(path, f"the header claims {needed / 1e9:.1f} GB of voxels, more than this "
                        f"machine's {memory / 1e9:.1f} GB of memory")


def _inflated_size(path: Path, f: BinaryIO, scan: _NonFinite | None) -> int:
    """Bytes a gzip or zlib stream inflates to, counted in bounded chunks and never kept
    (but shown to ``scan``).

    Raises
    ------
    LoadError
        The stream is corrupt (its checksum included) or ends before its end-of-stream marker.
    """
    inflate = zlib.decompressobj(wbits=47)  # 32 + 15: gzip or zlib framing, checksums checked
    total = 0
    try:
        while not inflate.eof and (chunk := f.read(_CHUNK)):
            while chunk and not inflate.eof:
                out = inflate.decompress(chunk, _CHUNK)
                total += len(out)
                if scan is not None:
                    scan.feed(out)
                chunk = inflate.unconsumed_tail
    except zlib.error as exc:
        raise LoadError(path, f"corrupt compressed data ({exc})") from exc
    if not inflate.eof:
        raise LoadError(path, "the compressed file is truncated (no end-of-stream marker)")
    return total


def _nifti_layout(path: Path) -> _Layout:
    compressed = path.name.lower().endswith(".gz")
    try:
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as f:
            head = f.read(540)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise LoadError(path, f"not a readable NIfTI file: corrupt gzip data ({exc})") from exc
    if len(head) < 348:
        raise LoadError(path, "not a readable NIfTI file: shorter than a NIfTI header")
    for order in "<>":
        sizeof_hdr = struct.unpack(order + "i", head[:4])[0]
        if sizeof_hdr == 348:
            dims = struct.unpack(order + "8h", head[40:56])
            datatype, bitpix = struct.unpack(order + "2h", head[70:74])
            pixdim = struct.unpack(order + "8f", head[76:108])
            offset = int(struct.unpack(order + "f", head[108:112])[0])
            break
        if sizeof_hdr == 540 and len(head) >= 540:
            datatype, bitpix = struct.unpack(order + "2h", head[12:16])
            dims = struct.unpack(order + "8q", head[16:80])
            pixdim = struct.unpack(order + "8d", head[104:168])
            offset = struct.unpack(order + "q", head[168:176])[0]
            break
    else:
        raise LoadError(path, "not a readable NIfTI file: not a NIfTI header (bad sizeof_hdr)")
    ndim = dims[0]
    if not 1 <= ndim <= 7 or any(d < 1 for d in dims[1 : ndim + 1]):
        raise LoadError(path, f"not a readable NIfTI file: invalid dimensions "
                        f"{list(dims[1 : ndim + 1])} in header")
    needed = math.prod(dims[1 : ndim + 1]) * max(bitpix, 0) // 8
    floats = {16: np.dtype(order + "f4"), 64: np.dtype(order + "f8")}.get(datatype)
    # Compressed, the voxels are at ``offset`` in the inflated stream: count the header in.
    return _Layout(needed + offset if compressed else needed, path, 0 if compressed else offset,
                   compressed, tuple(pixdim[1 : min(ndim, 3) + 1]), floats,
                   offset if compressed else 0)


def _text_header(path: Path, kind: str) -> tuple[list[str], int]:
    """The header lines of a NRRD or MetaImage file and the byte offset just after them."""
    with open(path, "rb") as f:
        raw = f.read(1 << 16)
    if kind == "NRRD":
        end = raw.find(b"\n\n")
        if not raw.startswith(b"NRRD") or end < 0:
            raise LoadError(path, "not a readable NRRD file (no NRRD magic or header end)")
        return raw[:end].decode("latin-1").splitlines()[1:], end + 2
    # MetaImage: the header ends with the ElementDataFile line.
    match = re.search(rb"^ElementDataFile\s*=.*?(\r?\n|$)", raw, re.MULTILINE)
    if match is None:
        raise LoadError(path, "not a readable MetaImage file (no ElementDataFile line)")
    return raw[: match.end()].decode("latin-1").splitlines(), match.end()


def _nrrd_fields(path: Path, lines: list[str], end: int) -> _Layout | None:
    fields = {k.strip().lower(): v.strip() for k, sep, v in
              (ln.partition(": ") for ln in lines if not ln.startswith("#")) if sep}
    item = _NRRD_TYPES.get(fields.get("type", "").lower())
    encoding = fields.get("encoding", "").lower()
    if item is None or encoding not in ("raw", "gzip", "gz") or "sizes" not in fields:
        return None
    sizes = [int(s) for s in fields["sizes"].split()]
    if "space directions" in fields:
        spacing = tuple(math.hypot(*(float(x) for x in d.split(",")))
                        for d in re.findall(r"\(([^)]*)\)", fields["space directions"]))
    else:
        spacing = tuple(float(s) for s in fields.get("spacings", "").split() if s != "nan")
    data_file = fields.get("data file", fields.get("datafile"))
    data, start = (path, end) if data_file is None else (path.parent / data_file, 0)
    if data_file is not None and (" " in data_file or "%" in data_file):
        return None  # a list or pattern of files
    return _Layout(math.prod(sizes) * item, data, start, encoding != "raw", spacing[:3])


def _meta_fields(path: Path, lines: list[str], end: int) -> _Layout | None:
    fields = {k.strip(): v.strip() for k, sep, v in (ln.partition("=") for ln in lines) if sep}
    item = _META_TYPES.get(fields.get("ElementType", ""))
    data_file = fields.get("ElementDataFile", "")
    if item is None or "DimSize" not in fields or " " in data_file or data_file == "LIST":
        return None
    sizes = [int(s) for s in fields["DimSize"].split()]
    channels = int(fields.get("ElementNumberOfChannels", "1"))
    spacing = tuple(float(s) for s in fields.get("ElementSpacing", "").split())
    if data_file == "LOCAL":
        data, start = path, end
    else:
        data, start = path.parent / data_file, int(fields.get("HeaderSize", "0"))
    compressed = fields.get("CompressedData", "False").lower() == "true"
    return _Layout(math.prod(sizes) * channels * item, data, max(start, 0), compressed,
                   spacing[:3])


def _text_layout(path: Path, parse: Callable[[Path, list[str], int], _Layout | None],
                 kind: str) -> _Layout | None:
    lines, end = _text_header(path, kind)
    try:
        return parse(path, lines, end)
    except ValueError as exc:
        raise LoadError(path, f"not a readable {kind} file: bad number in header ({exc})") from exc


def _mm(values: tuple[float, ...]) -> str:
    return " x ".join(f"{v:g}" for v in values)
