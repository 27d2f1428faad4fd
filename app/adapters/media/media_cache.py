"""Keep converted sounds as ``<key>.wav`` files in one folder, bounded in bytes, evicting LRU.

Several processes may share the folder. Files appear by atomic rename, so a
reader sees a whole file or none. Eviction runs under an exclusive ``flock``
so two processes never race over which files to delete. "Used" is the file's
mtime, set by :meth:`MediaCache.store` and :meth:`MediaCache.lookup` (atime is
unreliable under ``noatime``/``relatime``). A file may still disappear between
lookup and use (evicted once unprotected, or removed by hand); callers simply
produce it again.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from app.atomic_file import write_atomically

# Asterisk usually runs as its own user; the writer's default 0600 would hide files from it.
_FILE_MODE: Final = 0o644
_KEY: Final = re.compile(r"[0-9a-f]{16,128}")
_SUFFIX: Final = ".wav"
_LOCK_NAME: Final = ".lock"
# A temp file this old belongs to a writer that crashed (a write takes well under a second).
_STALE_TEMP_SECONDS: Final = 3600.0


class MediaCache:
    """Files named by hex key in ``directory``, evicted least-recently-used past ``max_bytes``.

    Files used within ``protect_seconds`` are never evicted, because a queued call may be
    about to play one; the total can therefore exceed ``max_bytes`` while everything in
    the folder is that recent. ``clock`` gives the wall-clock time written as mtime.
    """

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        *,
        protect_seconds: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        if protect_seconds < 0:
            raise ValueError("protect_seconds must not be negative")
        self.directory = directory
        self.max_bytes = max_bytes
        self.protect_seconds = protect_seconds
        self._clock = clock

    def path_for(self, key: str) -> Path:
        """The file ``key`` is (or would be) stored in; ``ValueError`` for a malformed key."""
        # fullmatch on a closed alphabet: the key becomes a file name, so no "/", ".." or
        # newline can get through.
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError("cache key must be 16 to 128 lowercase hex digits")
        return self.directory / f"{key}{_SUFFIX}"

    def lookup(self, key: str) -> Path | None:
        """The stored file for ``key``, marked as just used, or ``None`` if there is none."""
        path = self.path_for(key)
        try:
            self._mark_used(path)
        except FileNotFoundError:
            return None
        return path

    def store(self, key: str, data: bytes) -> Path:
        """Write ``data`` as the file for ``key`` (replacing any), then evict to fit."""
        path = self.path_for(key)
        self.directory.mkdir(parents=True, exist_ok=True)
        write_atomically(path, data, mode=_FILE_MODE)
        # Unconditionally, so the mtime follows ``clock`` even if the filesystem's differs.
        with contextlib.suppress(FileNotFoundError):  # evicted by hand already: caller's job
            self._mark_used(path)
        self.evict(keep=key)
        return path

    def total_bytes(self) -> int:
        """Bytes held by the cache's files (temp files and foreign files excluded)."""
        return sum(size for _, _, size in self._entries())

    def evict(self, *, keep: str | None = None) -> list[Path]:
        """Delete least-recently-used files until the total fits; return what was deleted.

        ``keep`` (a key) and files used within ``protect_seconds`` are never deleted.
        """
        # Unlocked look first: while the cache fits (the usual case) writers never queue
        # on the lock, and no lock file is created.
        if self.total_bytes() <= self.max_bytes:
            return []
        lock_fd = os.open(self.directory / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            # The scan happens under the lock so the totals reflect every other evictor's
            # deletions; writers do not take the lock, so a file stored meanwhile is just
            # counted on the next pass.
            return self._evict_locked(keep)
        finally:
            os.close(lock_fd)  # closing the descriptor releases the flock

    def _evict_locked(self, keep: str | None) -> list[Path]:
        now = self._clock()
        self._remove_stale_temp_files()
        entries = sorted(self._entries())  # oldest mtime first
        total = sum(size for _, _, size in entries)
        evicted: list[Path] = []
        for mtime, path, size in entries:
            if total <= self.max_bytes:
                break
            if path.stem == keep or now - mtime < self.protect_seconds:
                continue
            try:
                # Lookups do not take the lock: re-read the mtime so a file another
                # process marked used since the scan survives (all but a tiny window).
                if now - path.stat().st_mtime < self.protect_seconds:
                    continue
                path.unlink()
            except FileNotFoundError:
                pass  # removed by someone else; it no longer counts either way
            else:
                evicted.append(path)
            total -= size
        return evicted

    def _entries(self) -> list[tuple[float, Path, int]]:
        # Only files this cache could have written count; anything else in the folder
        # (the lock, temp files, a stray README) is neither counted nor deleted.
        entries = []
        try:
            scan = os.scandir(self.directory)
        except FileNotFoundError:
            return []
        with scan:
            for entry in scan:
                name = entry.name
                if not name.endswith(_SUFFIX) or not _KEY.fullmatch(name[: -len(_SUFFIX)]):
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                entries.append((info.st_mtime, Path(entry.path), info.st_size))
        return entries

    def _remove_stale_temp_files(self) -> None:
        # write_atomically's temp files are ".<key>.wav.XXXX.tmp"; a crash leaves one behind.
        # Real time, not ``clock``: these mtimes come from the filesystem, not from us.
        now = time.time()
        for temp in self.directory.glob(f".*{_SUFFIX}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                if now - temp.stat().st_mtime > _STALE_TEMP_SECONDS:
                    temp.unlink()

    def _mark_used(self, path: Path) -> None:
        now = self._clock()
        os.utime(path, (now, now))
