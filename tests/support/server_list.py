"""A media servers file (VOXCAST_MEDIA_SERVERS_FILE) listing Asterisk instances under test."""

from __future__ import annotations

from pathlib import Path

from app.runtime import layout_of
from app.settings import Settings


def write_server_list(path: Path, servers: list[Settings], capacity: int) -> Path:
    """Each of `servers` as one `[[server]]` entry with `capacity`; private, as it holds
    ARI passwords."""
    entries = []
    for server in servers:
        layout = layout_of(server)
        entries.append(
            f'[[server]]\nname = "{server.instance_name}"\nari_url = "{server.ari_url}"\n'
            f'ari_user = "{server.ari_user}"\nari_password = "{server.ari_password.value}"\n'
            f'capacity = {capacity}\nroot = "{layout.root}"\n'
            f'instance_dir = "{layout.instance_dir}"\n')
    path.write_text("\n".join(entries))
    path.chmod(0o600)
    return path
