"""The one way every exporter writes a file, and the check a command makes before its work.

:func:`atomic_output` writes to a temporary file in the target folder, renamed over the target
only when complete, refuses to replace an existing file unless told to, and turns the operating
system's refusals (no permission, a file where a folder should be, a full disk) into one
:class:`LoadError` naming the target. :func:`check_output` asks the same questions before a
command loads, segments or converts anything, so that minutes of work are not lost to a typo.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medseg_gui.core.atomic import atomic_path
from medseg_gui.io.errors import LoadError


def check_output(path: str | Path, *, force: bool = False) -> Path:
    """``path`` if a file may be written there; otherwise one clear :class:`LoadError`.

    The nearest existing folder above ``path`` must be a folder this user may write in (missing
    folders below it are created on writing), and ``path`` must not exist unless ``force``.
    """
    p = Path(path)
    if p.exists() and not force:
        raise LoadError(p, "output exists; pass --force to overwrite it")
    folder = p.absolute().parent
    while not folder.exists() and not folder.is_symlink() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise LoadError(p, f"cannot write here: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise LoadError(p, f"cannot write here: no permission to write in {folder}")
    return p


@contextmanager
def atomic_output(path: str | Path, *, overwrite: bool = False,
                  suffix: str = ".part") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    ``suffix`` ends the temporary name (SimpleITK picks its writer from it).

    Raises
    ------
    LoadError
        ``path`` exists and ``overwrite`` is false, or the system refuses the write.
    """
    p = Path(path)
    if p.exists() and not overwrite:
        raise LoadError(p, "output exists; pass --force (overwrite=True) to replace it")
    check_output(p, force=True)
    try:
        with atomic_path(p, suffix) as tmp:
            yield tmp
    except OSError as exc:
        raise LoadError(p, f"cannot write the file ({exc.strerror or exc})") from exc


def write_text_atomic(path: str | Path, text: str, *, overwrite: bool = False) -> Path:
    """Write a text file through :func:`atomic_output`."""
    with atomic_output(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
