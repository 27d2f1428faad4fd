"""Where the API is and which key to send: options, then the environment, then a config file.

The file is TOML, `~/.config/voxcast/config.toml` unless `--config` or `VOXCAST_CONFIG` names
another:

    url = "http://127.0.0.1:8080"
    api_key = "..."
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8080"


class ConfigError(ValueError):
    """The config file cannot be used; the message names it and says why."""


def default_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "voxcast" / "config.toml"


@dataclass(frozen=True)
class ClientConfig:
    url: str
    api_key: str  # empty: send no Authorization header (an open, loopback-only service)


def resolve(url: str | None, api_key: str | None, config_path: Path | None) -> ClientConfig:
    """Options and environment (typer passes VOXCAST_URL/VOXCAST_API_KEY in as options) win
    over the file; a file named explicitly must exist, the default one may not."""
    path = config_path or default_config_path()
    from_file: dict[str, object] = {}
    if path.is_file():
        try:
            from_file = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(f"cannot read {path}: {error}") from error
        unknown = sorted(set(from_file) - {"url", "api_key"})
        if unknown:
            raise ConfigError(f"{path}: unknown keys {unknown} (expected url, api_key)")
    elif config_path is not None:
        raise ConfigError(f"no config file at {path}")
    chosen_url = url or str(from_file.get("url") or DEFAULT_URL)
    if not chosen_url.startswith(("http://", "https://")):
        raise ConfigError(f"the API URL must start with http:// or https://, not {chosen_url!r}")
    return ClientConfig(url=chosen_url.rstrip("/"),
                        api_key=api_key or str(from_file.get("api_key") or ""))
