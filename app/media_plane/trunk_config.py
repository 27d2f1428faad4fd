"""The trunks file: read and validated (TOML, `VOXCAST_TRUNKS_FILE`), and shaped for the
PJSIP templates (pjsip_trunks.conf, pjsip_trunk_auth.conf)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from app.domain.trunks import TrunkFileError, TrunkTable, parse_trunks


def load_trunks_file(path: Path | None, transports: tuple[str, ...]) -> TrunkTable:
    """The trunks in `path` (no path: none), or TrunkFileError saying what is wrong where."""
    if path is None:
        return TrunkTable()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TrunkFileError(f"cannot read {path}: {error}") from error
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise TrunkFileError(f"{path} is not valid TOML: {error}") from error
    try:
        return parse_trunks(document, transports=transports)
    except TrunkFileError as error:
        raise TrunkFileError(f"{path}: {error}") from error


def trunk_context(table: TrunkTable) -> list[dict[str, Any]]:
    """What the templates need of each trunk; every value was validated by its pattern."""
    rendered = []
    for trunk in table.trunks:
        spec = trunk.spec
        registration = None
        uris = trunk.registration_uris()
        if uris is not None:
            assert spec.registration is not None and spec.auth is not None  # noqa: S101
            contact_user = spec.registration.contact_user or spec.auth.username
            registration = {
                "client_uri": _escaped(uris[0]), "server_uri": _escaped(uris[1]),
                "contact_user": contact_user, "expiry": spec.registration.expiry,
                "forbidden_retry_seconds": spec.registration.forbidden_retry_seconds}
        rendered.append({
            "name": trunk.name, "transport": trunk.transport, "codecs": ",".join(spec.codecs),
            "auth": spec.auth.model_dump() if spec.auth else None,
            "from_user": spec.from_.user, "from_domain": spec.from_.domain,
            "qualify_seconds": spec.qualify_seconds, "registration": registration,
            "hosts": [{"contact": _escaped(host.uri), "address": host.address}
                      for host in spec.hosts]})
    return rendered


def _escaped(uri: str) -> str:
    # A bare `;` starts a comment in an Asterisk config line.
    return uri.replace(";", r"\;")
