"""Write a file so readers see either the old content or the complete new content, never part."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes, *, mode: int, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` with permission bits ``mode``, atomically.

    The bytes go to a hidden temp file in the same folder (``.<name>.XXXX.tmp``: never
    ``*.wav``, so Asterisk cannot pick up a half-written sound), are fsynced, get ``mode``
    and are then renamed over ``path``. With ``exclusive=True`` the temp file is linked to
    ``path`` instead, which raises :class:`FileExistsError` if ``path`` already exists, so
    two racing first writers cannot overwrite each other. The folder must exist; the temp
    file is removed on any failure.
    """
    # mkstemp creates the file 0600, so nothing is readable by others before the chmod;
    # fchmod (unlike the mode of open()) is not reduced by the umask.
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    published = False
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fchmod(tmp.fileno(), mode)
            os.fsync(tmp.fileno())
        if exclusive:
            os.link(tmp_name, path)
        else:
            os.replace(tmp_name, path)
            published = True
    finally:
        if not published:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    # Makes the rename itself survive a power cut; some filesystems refuse to fsync a
    # folder, and the data is already safe in the file, so that is not an error.
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
