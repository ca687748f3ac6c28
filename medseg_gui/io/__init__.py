"""Readers and writers: DICOM folders and series, NIfTI/NRRD/MHA, RTSTRUCT.

Every reader fails with :class:`medseg_gui.io.errors.LoadError` naming the file and the problem.
"""

from medseg_gui.io.errors import LoadError

__all__ = ["LoadError"]
