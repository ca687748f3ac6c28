"""A 3D image: voxel array plus geometry and the identifiers a clinician needs."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from medseg_gui.core.geometry import Geometry

if TYPE_CHECKING:  # imported where used: headless GPU nodes run the core without SimpleITK
    import SimpleITK as sitk


@dataclass(frozen=True)
class StudyInfo:
    """Identifiers and descriptions of the series a volume came from (all optional)."""

    patient_id: str = ""
    patient_name: str = ""
    study_uid: str = ""
    series_uid: str = ""
    frame_of_reference_uid: str = ""
    study_description: str = ""
    series_description: str = ""
    study_date: str = ""
    modality: str = ""
    body_part: str = ""  # DICOM BodyPartExamined, e.g. "EXTREMITY", "CHEST"


@dataclass(frozen=True)
class Volume:
    """Voxel array (indexed ``[k, j, i]``) with its LPS geometry.

    The array is stored as given (int16 HU for most CT, float32 otherwise). Every operation
    returns a new ``Volume`` with geometry carried along, so a copy, crop or resample never
    loses where the voxels are.

    Parameters
    ----------
    array
        3D voxel values, shape equal to ``geometry.shape``.
    geometry
        Grid and LPS placement.
    info
        Patient/study/series identifiers and modality.
    source
        Path (file or folder) the volume was read from, for messages.
    warnings
        Problems found while loading that the user should know about (missing slices, tilt...).
    """

    array: npt.NDArray[Any]
    geometry: Geometry
    info: StudyInfo = field(default_factory=StudyInfo)
    source: str = ""
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"a Volume needs a 3D array, got shape {self.array.shape}")
        if tuple(self.array.shape) != self.geometry.shape:
            raise ValueError(
                f"array shape {self.array.shape} does not match geometry {self.geometry.shape}"
            )

    # -- convenience ---------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return self.geometry.shape

    @property
    def spacing(self) -> tuple[float, float, float]:
        return self.geometry.spacing

    @property
    def origin(self) -> tuple[float, float, float]:
        return self.geometry.origin

    @property
    def direction(self) -> npt.NDArray[np.float64]:
        return self.geometry.direction_matrix

    @property
    def modality(self) -> str:
        return self.info.modality

    def index_to_world(self, ijk: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return self.geometry.index_to_world(ijk)

    def world_to_index(self, xyz: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return self.geometry.world_to_index(xyz)

    # -- derived volumes -----------------------------------------------------------------
    def with_array(self, array: npt.NDArray[Any]) -> Volume:
        """The same volume with other voxel values (same grid)."""
        return dataclasses.replace(self, array=array)

    def copy(self) -> Volume:
        return self.with_array(self.array.copy())

    def crop(self, start_ijk: Sequence[int], stop_ijk: Sequence[int]) -> Volume:
        """Voxels ``[start, stop)`` along ``i, j, k``, keeping their world position."""
        geom = self.geometry.crop(start_ijk, stop_ijk)
        (i0, j0, k0), (i1, j1, k1) = start_ijk, stop_ijk
        return dataclasses.replace(
            self, array=self.array[k0:k1, j0:j1, i0:i1].copy(), geometry=geom
        )

    def resample(self, target: Geometry, *, interpolation: str = "linear",
                 default_value: float | None = None) -> Volume:
        """Resample onto another grid (in world space) with SimpleITK.

        ``interpolation`` is ``"linear"``, ``"nearest"`` or ``"bspline"``; ``default_value``
        fills voxels outside the source (the array minimum when omitted, i.e. air for CT).
        """
        import SimpleITK as sitk

        interp = {
            "linear": sitk.sitkLinear,
            "nearest": sitk.sitkNearestNeighbor,
            "bspline": sitk.sitkBSpline,
        }[interpolation]
        fill = float(self.array.min()) if default_value is None else float(default_value)
        out = sitk.Resample(
            to_sitk(self.array, self.geometry), make_reference(target), sitk.Transform(), interp,
            fill,
        )
        arr = sitk.GetArrayFromImage(out)
        if interpolation == "nearest":
            arr = arr.astype(self.array.dtype, copy=False)
        return dataclasses.replace(self, array=arr, geometry=target)

    def summary(self) -> dict[str, object]:
        """JSON-ready description used by ``medseg info`` and logs."""
        arr = self.array
        return {
            "source": self.source,
            **self.geometry.to_dict(),
            "dtype": str(arr.dtype),
            "value_range": [float(arr.min()), float(arr.max())],
            **{k: v for k, v in dataclasses.asdict(self.info).items()},
            "warnings": list(self.warnings),
        }


def to_sitk(array: npt.NDArray[Any], geometry: Geometry) -> sitk.Image:
    """A SimpleITK image sharing no memory with ``array``, with ``geometry`` applied."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(array))
    img.SetSpacing(geometry.spacing)
    img.SetOrigin(geometry.origin)
    img.SetDirection(geometry.direction)
    return img


def make_reference(geometry: Geometry) -> sitk.Image:
    """An empty SimpleITK image on ``geometry``, for resampling onto it."""
    import SimpleITK as sitk

    img = sitk.Image(list(geometry.size_ijk), sitk.sitkUInt8)
    img.SetSpacing(geometry.spacing)
    img.SetOrigin(geometry.origin)
    img.SetDirection(geometry.direction)
    return img


def geometry_of(image: sitk.Image) -> Geometry:
    """The geometry of a 3D SimpleITK image."""
    if image.GetDimension() != 3:
        raise ValueError(f"expected a 3D image, got {image.GetDimension()}D")
    i, j, k = image.GetSize()
    return Geometry(
        shape=(k, j, i),
        spacing=image.GetSpacing(),
        origin=image.GetOrigin(),
        direction=image.GetDirection(),
    )
