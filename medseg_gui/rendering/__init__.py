"""VTK pipelines without widgets: numpy <-> vtkImageData, slice views, overlays, presets.

Nothing here imports Qt; :mod:`medseg_gui.ui` puts these renderers into widgets.
"""

from medseg_gui.rendering.imagedata import from_vtk_image, to_vtk_image
from medseg_gui.rendering.overlay import label_lookup_table
from medseg_gui.rendering.presets import WindowLevel, auto_window, load_presets
from medseg_gui.rendering.slice_view import SliceView, volume_center
from medseg_gui.rendering.slicing import (
    Orientation,
    SliceLayout,
    direction_letter,
    edge_letters,
    probe,
    view_matrix,
)

__all__ = [
    "Orientation",
    "SliceLayout",
    "SliceView",
    "WindowLevel",
    "auto_window",
    "direction_letter",
    "edge_letters",
    "from_vtk_image",
    "label_lookup_table",
    "load_presets",
    "probe",
    "to_vtk_image",
    "view_matrix",
    "volume_center",
]
