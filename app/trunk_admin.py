"""`python -m app trunks reload`: check the trunks file, then have the running service reload
it (SIGHUP to the pid it keeps in its runtime folder). A bad file is refused here already, so
the running trunks stay."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from app.domain.trunks import TrunkFileError
from app.media_plane.rendering import trunks_of
from app.runtime import PID_FILE_NAME
from app.settings import Settings


def reload_trunks(settings: Settings) -> int:
    if settings.trunks_file is None:
        print("VOXCAST_TRUNKS_FILE is not set: there is no trunks file to reload",
              file=sys.stderr)
        return 2
    try:
        table = trunks_of(settings)
    except TrunkFileError as error:
        print(f"trunks file refused, the running trunks stay: {error}", file=sys.stderr)
        return 2
    pid_file = settings.runtime_dir / PID_FILE_NAME
    pid = _service_pid(pid_file)
    if pid is None:
        print(f"no running Voxcast service found (no live pid in {pid_file}); the file is "
              "valid and is read at the next start", file=sys.stderr)
        return 1
    os.kill(pid, signal.SIGHUP)
    names = ", ".join(trunk.name for trunk in table.trunks) or "none"
    print(f"asked the service (pid {pid}) to reload its trunks: {names}; "
          "`voxcast trunks` shows their state")
    return 0


def _service_pid(pid_file: Path) -> int | None:
    """The pid in the file, if that process is still a `python -m app` (not a reused pid)."""
    try:
        pid = int(pid_file.read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if b"app" in command else None
