"""The media servers (Asterisk instances) a deployment dials through.

By default one: the instance `make run` starts, or the Asterisk at VOXCAST_ARI_URL. With
VOXCAST_MEDIA_SERVERS_FILE, a TOML file lists several:

    [[server]]
    name = "a"                               # letters, digits, _ and -
    ari_url = "http://127.0.0.1:8088"
    ari_user = "voxcast"
    ari_password = "..."                     # keep the file private (mode 0600)
    capacity = 200                           # live calls at most on this server
    root = "/"                               # optional: the root it runs in, seen from here
    instance_dir = "/srv/voxcast/a"          # optional: its instance folder, seen from here

With `instance_dir` (inside `root`), this service writes the sounds that server plays into
its `sounds/` folder and reads its channel event log (`log/`) to settle crashed calls;
without it, the server must see this node's own sounds folder at the same path (a shared
volume) and crashed calls on it are settled without Asterisk's log.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.media_plane.layout import AsteriskLayout
from app.settings import Secret, Settings, SettingsError

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_KEYS = {"name", "ari_url", "ari_user", "ari_password", "capacity", "root", "instance_dir"}


@dataclass(frozen=True, slots=True)
class MediaServerConfig:
    name: str
    ari_url: str
    ari_user: str
    ari_password: Secret
    capacity: int  # live calls at most
    layout: AsteriskLayout | None  # its files as this host sees them, when it can


def this_instance(settings: Settings) -> MediaServerConfig:
    """The one media server of a deployment without a servers file."""
    return MediaServerConfig(
        name=settings.instance_name, ari_url=settings.ari_url, ari_user=settings.ari_user,
        ari_password=settings.ari_password, capacity=settings.max_concurrent_calls,
        layout=AsteriskLayout(root=settings.asterisk_root, instance_dir=settings.instance_dir))


def media_servers(settings: Settings) -> list[MediaServerConfig]:
    """The servers to dial through; raises SettingsError naming the server and the key."""
    if settings.media_servers_file is None:
        return [this_instance(settings)]
    path = settings.media_servers_file
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SettingsError(f"VOXCAST_MEDIA_SERVERS_FILE ({path}): {error}") from error
    entries = document.get("server")
    if not isinstance(entries, list) or not entries:
        raise SettingsError(f"{path}: list the servers as [[server]] tables")
    servers = [_server(path, index, entry) for index, entry in enumerate(entries)]
    names = [server.name for server in servers]
    if len(set(names)) != len(names):
        raise SettingsError(f"{path}: server names must be unique")
    return servers


def _server(path: Path, index: int, entry: Any) -> MediaServerConfig:
    where = f"{path}: server {index + 1}"
    if not isinstance(entry, dict):
        raise SettingsError(f"{where}: must be a table")
    if isinstance(entry.get("name"), str):
        where = f"{path}: server {entry['name']!r}"
    unknown = set(entry) - _KEYS
    if unknown:
        raise SettingsError(f"{where}: unknown keys {sorted(unknown)}")

    def text(key: str, pattern: re.Pattern[str] | None = None) -> str:
        value = entry.get(key)
        if not isinstance(value, str) or not value or (
                pattern is not None and pattern.fullmatch(value) is None):
            raise SettingsError(f"{where}: `{key}` is missing or malformed")
        return value

    name = text("name", _NAME)
    ari_url = text("ari_url")
    if not ari_url.startswith(("http://", "https://")):
        raise SettingsError(f"{where}: `ari_url` must be an http or https URL")
    capacity = entry.get("capacity")
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise SettingsError(f"{where}: `capacity` must be a whole number of calls, at least 1")
    layout = None
    if "instance_dir" in entry:
        try:
            layout = AsteriskLayout(root=Path(entry.get("root", "/")),
                                    instance_dir=Path(text("instance_dir")))
        except ValueError as error:
            raise SettingsError(f"{where}: `instance_dir`: {error}") from error
    return MediaServerConfig(name=name, ari_url=ari_url, ari_user=text("ari_user"),
                             ari_password=Secret(text("ari_password")), capacity=capacity,
                             layout=layout)
