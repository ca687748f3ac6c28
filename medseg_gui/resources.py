"""Paths of the files shipped under ``resources/`` (demo study, presets, colour tables)."""

from __future__ import annotations

from pathlib import Path

# resources/ sits beside the package in a checkout and in the packaged app.
RESOURCES = Path(__file__).resolve().parent.parent / "resources"
DEMO_STUDY = RESOURCES / "demo" / "STS_008" / "dicom" / "image"
DEMO_RTSTRUCT = RESOURCES / "demo" / "STS_008" / "dicom" / "mask" / "RS.dcm"
DEMO_MASK = RESOURCES / "demo" / "STS_008" / "gtv_mask.nii.gz"
