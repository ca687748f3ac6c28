"""One 2D image layer of a slice view: an unlit texture on quads that skip empty tiles.

Why not ``vtkImageActor``: its quad goes through VTK's lit polygon shader, and on software
OpenGL (Mesa llvmpipe) a slice view is bound by how many pixels it shades, not by reslicing.
Measured on the 2-core test machine, a 700 x 700 view spent about 12 ms shading one lit image
quad and about 8 ms shading the same quad unlit. The texture's pixels are those
``vtkImageActor`` would show (the caller maps values to colours on the CPU, as
``vtkImageActor`` does too, see :mod:`medseg_gui.rendering.slice_source`), and the quads span
the outer pixel edges (the image actor's ``BorderOn``) with the texture clamped at its edges.

A pixel that shows nothing still costs as much to shade as one that shows something, so a
layer draws only the tiles (:data:`TILE` texels square) of its image that hold something:
for the CT the tiles not entirely black (the air around the body is about half of an abdominal
slice in a soft-tissue window; the view's background is black), for an overlay the
tiles with a pixel that is not fully transparent. A tile is skipped only when it and the ring of
texels around it are empty, so no pixel changes: a screen pixel inside a skipped tile samples
(linear or nearest) only texels within one texel of it, all of them empty, exactly what the
background shows there. Neighbouring kept tiles of a row are merged into one quad.

An overlay is mostly transparent; its caller passes only the box around its visible pixels
(:meth:`SliceLayer.show` with the box's offset), so only the box is coloured and uploaded.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPolyData
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper, vtkTexture

# Tile edge in texels. Smaller tiles follow the body's outline more closely but make more
# quads; at 16 a 512 x 512 slice is at most 32 rows of a few merged quads each.
TILE = 16


class SliceLayer:
    """A textured layer at height ``z`` (view mm) over a slice's pixel grid.

    Parameters
    ----------
    z
        Height above the slice (towards the camera), which orders the layers.
    linear
        Linear texture interpolation (the CT) or nearest neighbour (labels, probability).
    opacity
        The actor's opacity (0..1); the texture's own alpha multiplies it.
    """

    def __init__(self, z: float, *, linear: bool, opacity: float = 1.0) -> None:
        self.z = float(z)
        self.uploads = 0  # textures sent to OpenGL so far (tests, benchmarks)
        self._grid: tuple[tuple[float, float, float, float], tuple[int, int]] | None = None
        self.texture = vtkTexture()
        self.texture.SetInterpolate(bool(linear))
        self.texture.RepeatOff()
        self.texture.EdgeClampOn()
        self.texture.SetColorModeToDirectScalars()  # unsigned char in, no lookup on upload
        self._quads = vtkPolyData()
        mapper = vtkPolyDataMapper()
        mapper.SetInputData(self._quads)
        mapper.ScalarVisibilityOff()
        self.actor = vtkActor()
        self.actor.SetMapper(mapper)
        self.actor.SetTexture(self.texture)
        prop = self.actor.GetProperty()
        prop.LightingOff()  # see the module docstring
        prop.SetColor(1.0, 1.0, 1.0)
        prop.SetOpacity(float(opacity))
        self.actor.PickableOff()
        self.actor.VisibilityOff()
        self._shown = False  # whether the last image held anything to draw

    def set_grid(self, bounds: tuple[float, float, float, float], size: tuple[int, int]) -> None:
        """The slice's outer pixel edges ``(xmin, xmax, ymin, ymax)`` (view mm) and its
        ``(columns, rows)``; images given to :meth:`show` are placed on this grid."""
        xmin, xmax, ymin, ymax = (float(b) for b in bounds)
        self._grid = ((xmin, xmax, ymin, ymax), (int(size[0]), int(size[1])))

    def show(self, pixels: npt.NDArray[np.uint8] | None, row: int = 0, col: int = 0) -> None:
        """Draw ``pixels`` (``(rows, cols)`` grey or ``(rows, cols, 4)`` RGBA, row 0 at the
        bottom) with its first pixel at ``(row, col)`` of the grid; ``None`` draws nothing.

        Black grey pixels and transparent RGBA pixels count as empty (see the module docstring).
        """
        empty = pixels is None or self._grid is None or pixels.size == 0
        quads = None if empty else _kept_quads(_filled(pixels))  # type: ignore[arg-type]
        if quads is None or not len(quads):
            self._shown = False
            self.actor.SetVisibility(False)
            return
        assert pixels is not None and self._grid is not None
        (xmin, xmax, ymin, ymax), (nx, ny) = self._grid
        sx, sy = (xmax - xmin) / nx, (ymax - ymin) / ny
        h, w = pixels.shape[:2]
        # Quad corners in texels of the image -> view mm and texture coordinates.
        c0, c1, r0, r1 = (quads[:, n] for n in range(4))
        cs = np.stack([c0, c1, c1, c0], axis=1).ravel()
        rs = np.stack([r0, r0, r1, r1], axis=1).ravel()
        points = np.column_stack([xmin + (col + cs) * sx, ymin + (row + rs) * sy,
                                  np.full(cs.size, self.z)])
        tcoords = np.column_stack([cs / w, rs / h]).astype(np.float32)
        self._set_quads(points, tcoords)
        image = vtkImageData()
        image.SetDimensions(w, h, 1)
        flat = np.ascontiguousarray(pixels).reshape(h * w, -1)
        image.GetPointData().SetScalars(numpy_to_vtk(flat, deep=True))  # type: ignore[no-untyped-call]
        self.texture.SetInputData(image)
        self.uploads += 1
        self._shown = True
        self.actor.SetVisibility(True)

    def _set_quads(self, points: npt.NDArray[np.float64], tcoords: npt.NDArray[np.float32]
                   ) -> None:
        n = len(points) // 4
        pts = vtkPoints()
        pts.SetData(numpy_to_vtk(points.astype(np.float32), deep=True))  # type: ignore[no-untyped-call]
        cells = vtkCellArray()
        cells.SetData(numpy_to_vtkIdTypeArray(np.arange(0, 4 * n + 1, 4), deep=True),  # type: ignore[no-untyped-call]
                      numpy_to_vtkIdTypeArray(np.arange(4 * n), deep=True))  # type: ignore[no-untyped-call]
        poly = vtkPolyData()
        poly.SetPoints(pts)
        poly.SetPolys(cells)
        poly.GetPointData().SetTCoords(numpy_to_vtk(tcoords, deep=True))  # type: ignore[no-untyped-call]
        self._quads.ShallowCopy(poly)

    def hide(self) -> None:
        """Draw nothing until the next :meth:`show`."""
        self.show(None)

    def set_opacity(self, opacity: float) -> None:
        self.actor.GetProperty().SetOpacity(float(opacity))

    @property
    def opacity(self) -> float:
        return float(self.actor.GetProperty().GetOpacity())

    @property
    def shown(self) -> bool:
        """Whether the layer drew something in its last image."""
        return self._shown

    def bounds(self) -> tuple[float, float, float, float]:
        """``(xmin, xmax, ymin, ymax)`` (view mm) of what the layer draws."""
        x0, x1, y0, y1, _, _ = self._quads.GetBounds()
        return x0, x1, y0, y1


def _filled(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Texels that show something (grey: not black; RGBA: not transparent)."""
    filled: npt.NDArray[np.bool_] = pixels != 0 if pixels.ndim == 2 else pixels[:, :, 3] != 0
    return filled


def _kept_quads(filled: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """``(n, 4)`` quads ``(col0, col1, row0, row1)`` in texels covering every tile that holds a
    filled texel within one texel of it (the 8-neighbourhood); each tile row's runs merged."""
    h, w = filled.shape
    th, tw = -(-h // TILE), -(-w // TILE)
    if w != tw * TILE:
        filled = np.pad(filled, ((0, 0), (0, tw * TILE - w)))
    # Per row, each tile's columns plus the column on either side of it. 16 bools are two
    # 64-bit words, so "any" over a tile's columns is one OR of two words.
    words = np.ascontiguousarray(filled).view(np.uint64).reshape(h, tw, TILE // 8)
    any_word = words[:, :, 0].copy()
    for n in range(1, TILE // 8):
        any_word |= words[:, :, n]
    across = any_word != 0
    across[:, 1:] |= filled[:, TILE - 1:-1:TILE]  # the last column of the tile on the left
    across[:, :-1] |= filled[:, TILE::TILE]  # the first column of the tile on the right
    if h != th * TILE:
        across = np.pad(across, ((0, th * TILE - h), (0, 0)))
    tiles = across.reshape(th, TILE, tw).any(axis=1)
    tiles[1:] |= across[TILE - 1:-1:TILE]  # the row just below each tile row
    tiles[:-1] |= across[TILE::TILE]  # the row just above
    # Runs of kept tiles along each tile row: starts and stops pair up in row-major order.
    edges = np.diff(np.pad(tiles.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    starts, stops = np.argwhere(edges == 1), np.argwhere(edges == -1)
    rows = starts[:, 0] * TILE
    return np.column_stack([starts[:, 1] * TILE, np.minimum(stops[:, 1] * TILE, w),
                            rows, np.minimum(rows + TILE, h)]).astype(np.int64)
