"""Write a file so that readers (and crashes) see the old file or the new one, never half."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, so stale temporary files are left alone
    fcntl = None  # type: ignore[assignment]

# A temporary file this young may belong to a writer that has not locked it yet.
_GRACE_S = 2.0


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp", *,
                durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    A failed write leaves no temporary file behind and ``path`` as it was. ``suffix`` is kept on
    the temporary name (writers that pick a format by extension need it). With ``durable`` the
    new bytes and the rename reach the disk before the block returns (fsync of the file, then of
    its folder): for what a power cut must not lose, such as the training queue.

    The temporary file is created with the user's umask (``mkstemp`` would make every output
    0600) and locked while it is written, so that a later write of the same target can tell the
    leftovers of a killed writer (unlocked) from a live one's and remove them.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target, suffix)
    fd, tmp = _create(target, suffix)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield tmp
        mode = os.fstat(fd).st_mode & 0o777  # what the umask gave the file we created
        if os.stat(tmp).st_mode & 0o777 != mode:  # a writer that put its own file there
            os.chmod(tmp, mode)  # (safetensors writes 0600)
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, target)
        if durable:
            fsync_folder(target.parent)
    finally:
        os.close(fd)
        if os.path.exists(tmp):
            os.unlink(tmp)


def _create(target: Path, suffix: str) -> tuple[int, Path]:
    """Create ``.<name>.<8 random>.<suffix>`` beside ``target`` with mode 0666 less the umask."""
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}{suffix}")
        try:
            return os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def _remove_stale(target: Path, suffix: str) -> None:
    """Delete temporary files of ``target`` that no live writer holds (a killed export's)."""
    if fcntl is None:
        return
    # Eight random characters: ours (hex) and those of tempfile.mkstemp, used before.
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]{{8}}{re.escape(suffix)}")
    for entry in os.scandir(target.parent):
        if not pattern.fullmatch(entry.name):
            continue
        try:
            if time.time() - entry.stat(follow_symlinks=False).st_mtime < _GRACE_S:
                continue
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue  # gone already, or not ours to open
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(entry.path)
        except OSError:
            pass  # locked: a writer is still at work
        finally:
            os.close(fd)


def write_bytes(path: str | Path, data: bytes, *, durable: bool = False) -> Path:
    """Write ``data`` to ``path`` through :func:`atomic_path`."""
    with atomic_path(path, durable=durable) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def fsync_folder(folder: str | Path) -> None:
    """Make a folder's entries (a rename, a new file) durable; a no-op off POSIX."""
    if os.name == "posix":
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
