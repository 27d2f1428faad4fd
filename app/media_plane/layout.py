"""Where one Asterisk instance keeps its files, seen from the host and from inside its root."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

# Sub-folders of an instance. The names must match asterisk/templates/asterisk.conf.j2.
_CONFIG = "etc"
_LOG = "log"
_SOUNDS = "sounds"
_SIPP = "sipp"
_ASTERISK_STATE = ("lib", "keys", "spool", "run", "cache")


def _normalised(path: Path, what: str) -> Path:
    if not path.is_absolute():
        raise ValueError(f"{what} must be an absolute path")
    # normpath folds "..", so a path cannot climb out of the root after the containment check.
    return Path(posixpath.normpath(str(path)))


def path_inside_root(root: Path, host_path: Path) -> str:
    """Return `host_path` as a program chrooted to `root` sees it; "/" leaves it unchanged."""
    root = _normalised(Path(root), "root")
    path = _normalised(Path(host_path), "host_path")
    if not path.is_relative_to(root):
        raise ValueError("path is outside the root")
    relative = path.relative_to(root).as_posix()
    return "/" if relative == "." else "/" + relative


@dataclass(frozen=True)
class AsteriskLayout:
    """An instance folder (host path) inside the root folder that holds Asterisk and SIPp.

    `root` is "/" for a native Asterisk, or the chroot folder. Asterisk sees every path
    relative to that root.
    """

    root: Path
    instance_dir: Path

    def __post_init__(self) -> None:
        root = _normalised(Path(self.root), "root")
        instance_dir = _normalised(Path(self.instance_dir), "instance_dir")
        if instance_dir == root or not instance_dir.is_relative_to(root):
            raise ValueError("instance_dir must be a folder inside root")
        # Frozen dataclass: store the normalised forms through object.__setattr__.
        object.__setattr__(self, "root", root)
        object.__setattr__(self, "instance_dir", instance_dir)

    def inside(self, host_path: Path) -> str:
        """Return `host_path` as Asterisk (running inside the root) sees it."""
        return path_inside_root(self.root, host_path)

    @property
    def instance_dir_inside(self) -> str:
        """The instance folder as Asterisk sees it (the `instance_dir` of the config)."""
        return self.inside(self.instance_dir)

    @property
    def config_dir(self) -> Path:
        return self.instance_dir / _CONFIG

    @property
    def config_file(self) -> Path:
        """The host path of asterisk.conf, the file given to `asterisk -C`."""
        return self.config_dir / "asterisk.conf"

    @property
    def log_dir(self) -> Path:
        return self.instance_dir / _LOG

    @property
    def channel_event_log(self) -> Path:
        """Asterisk's channel event log (CEL as JSON lines; cel_custom.conf names it)."""
        return self.log_dir / "cel-custom" / "voxcast-cel.json"

    @property
    def sound_dir(self) -> Path:
        """Where the service stores media for Asterisk to play (`sound:` + inside path)."""
        return self.instance_dir / _SOUNDS

    @property
    def sipp_dir(self) -> Path:
        return self.instance_dir / _SIPP

    @property
    def asterisk_dirs(self) -> tuple[Path, ...]:
        """Every folder Asterisk reads or writes in this instance; all must exist at start."""
        state = tuple(self.instance_dir / name for name in _ASTERISK_STATE)
        return (self.config_dir, self.log_dir, self.channel_event_log.parent, self.sound_dir,
                *state)


def default_instance_dir(root: Path, name: str) -> Path:
    """The conventional host path of the instance called `name` under `root`."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        raise ValueError("instance name must be 1-64 of A-Z a-z 0-9 _ -")
    return root / "srv/voxcast" / name


# Where Debian-style systems keep Asterisk's modules: the multiarch folder
# (/usr/lib/x86_64-linux-gnu/..., /usr/lib/aarch64-linux-gnu/...) or a plain lib folder.
_MODULE_DIR_PATTERNS = ("usr/lib/*/asterisk/modules", "usr/lib/asterisk/modules",
                        "usr/lib64/asterisk/modules")


class NoAsteriskModules(RuntimeError):
    """The root has no Asterisk modules folder: Asterisk is not installed there."""


def find_module_dir(root: Path) -> str:
    """Asterisk's modules folder inside `root`, as Asterisk sees it (found, not assumed, so the
    same templates serve x86-64, ARM and the container)."""
    for pattern in _MODULE_DIR_PATTERNS:
        found = sorted(folder for folder in Path(root).glob(pattern)
                       if (folder / "chan_pjsip.so").is_file())
        if found:
            return path_inside_root(Path(root), found[0])
    raise NoAsteriskModules(
        f"no Asterisk modules folder (with chan_pjsip.so) under {root}/usr/lib: is Asterisk "
        "installed in VOXCAST_ASTERISK_ROOT? (asterisk/provision.sh prints a root that has it)")

