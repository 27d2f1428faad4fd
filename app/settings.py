"""Typed, frozen settings read once from `VOXCAST_*` variables, with one aggregated error."""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from app.adapters.db.api_keys import parse_configured_keys
from app.adapters.media.address_policy import parse_networks
from app.domain.dial_target import valid_trunk_host

PREFIX = "VOXCAST_"
# VOXCAST_* names that are not settings of the service but are read by something else, so
# they are not reported as unknown: provision.sh, the `voxcast` command line, the log setup.
OTHER_NAMES = frozenset({
    "VOXCAST_CACHE_DIR", "VOXCAST_USE_HOST_ASTERISK",  # asterisk/provision.sh
    "VOXCAST_URL", "VOXCAST_API_KEY", "VOXCAST_CONFIG",  # voxcast (app/cli)
    "VOXCAST_LOG_LEVEL",  # python -m app, before the settings are read
    "VOXCAST_TEST_POSTGRES",  # the store tests' PostgreSQL
    "VOXCAST_SCREENSHOTS",  # where tests/e2e/test_dashboard.py saves its screenshots
})


class SettingsError(ValueError):
    """Every bad setting at once, so an operator fixes them in one go."""


@dataclass(frozen=True)
class Secret:
    """A value that never prints."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret(***)" if self.value else "Secret('')"

    def __str__(self) -> str:
        return "***"


@dataclass(frozen=True)
class Settings:
    """Everything the service is told. Names below map to `VOXCAST_<NAME>`."""

    host: str = "127.0.0.1"
    port: int = 8080
    runtime_dir: Path = Path("var")
    database_url: str = ""  # default: SQLite in runtime_dir
    node_id: str = "node-1"
    api_keys: Secret = Secret("")  # "tenant:key,tenant:key"; more keys live in the database
    operator_tenants: str = ""  # tenants that may read GET /monitor (all tenants' totals)
    instance_name: str = "default"  # names this service's Asterisk folder; tests use their own
    # Asterisk
    asterisk_root: Path = Path("/")  # "/" for a native Asterisk, else the chroot it runs in
    ari_url: str = "http://127.0.0.1:8088"
    ari_user: str = "voxcast"
    ari_password: Secret = Secret("")
    ari_app: str = "voxcast"
    ari_pool_size: int = 50
    # TOML listing several media servers (ARI URL, credentials, capacity); none: this one
    media_servers_file: Path | None = None
    sip_endpoint: str = "voxcast-out"
    sip_address: str = "127.0.0.1"  # the address SIP and RTP use towards recipients
    # Behind NAT (a container, a cloud VM): the public address SIP and SDP announce to far
    # ends outside `local_nets` (comma-separated networks reached directly).
    external_address: str = ""
    local_nets: str = ""
    sip_address6: str = "::1"  # the same for IPv6 targets; empty: IPv6 targets are refused
    trunk_host: str = ""  # host[:port] that phone numbers (+E.164, tel:) are sent to
    trunks_file: Path | None = None  # TOML of SIP trunks; replaces trunk_host when set
    sip_port: int = 5060  # UDP and TCP
    sip_tls_port: int = 5061
    tls_cert_file: Path | None = None  # Asterisk's TLS certificate; default: one made for dev
    tls_key_file: Path | None = None
    tls_ca_file: Path | None = None  # far ends' certificates are checked against it ...
    tls_verify_server: bool = False  # ... when this is on
    rtp_timeout: int = 30  # hang up an answered far end that sends no RTP this long; 0: never
    dns_nameservers: str = ""  # for host names in targets; empty: resolv.conf in the root
    ami_port: int = 5038
    ami_user: str = "voxcast-monitor"
    ami_password: Secret = Secret("")
    # Asterisk's own Prometheus metrics (res_prometheus) at <ari_url>/metrics, basic auth;
    # the password is generated into the runtime folder's secrets.json. Empty: not served.
    asterisk_metrics_user: str = "voxcast-metrics"
    asterisk_metrics_password: Secret = Secret("")
    rtp_start: int = 10000
    rtp_end: int = 10999
    # Dialling
    calls_per_second: float = 10.0
    max_concurrent_calls: int = 100
    ring_timeout: int = 30
    max_call_seconds: int = 3600
    drain_timeout: float = 10.0
    # Limits
    max_recipients: int = 100_000
    max_bulk_recipients: int = 1_000_000  # POST /voice/call/play/bulk
    max_playlist_items: int = 20
    max_body_bytes: int = 16 * 1024 * 1024
    # Media
    media_connect_timeout: float = 5.0
    media_total_timeout: float = 30.0
    media_max_bytes: int = 50 * 1024 * 1024
    media_max_seconds: float = 600.0
    media_check_seconds: float = 3.0  # how long a submit waits to refuse bad media outright
    media_allow_loopback: bool = False  # tests and the demo serve media on 127.0.0.1
    media_deny_networks: str = ""  # comma-separated, on top of the built-in deny list
    media_allow_networks: str = ""  # comma-separated exceptions to the built-in deny list
    media_cache_bytes: int = 1024 * 1024 * 1024
    # Text to speech
    tts_engines: str = "piper,flite,espeak"  # the default chain, in order
    gtts_enabled: bool = False  # Google's online engine: only where Google is reachable
    gtts_timeout: float = 5.0
    gtts_base_url: str = ""  # only to point gTTS at a local fake in tests
    max_text_chars: int = 2000
    # Webhooks and live events
    webhook_allow_loopback: bool = False  # webhook URLs on 127.0.0.1 / ::1 (tests, the demo)
    webhook_timeout: float = 10.0  # seconds an attempt may take
    webhook_concurrency: int = 20  # attempts in flight on each node
    webhook_backoff_scale: float = 1.0  # shrinks the retry schedule (hours) for tests
    webhook_secret_overlap: int = 86400  # seconds a rotated-out secret still signs
    # Each pass costs a few transactions whatever it carries: at 0.2 s they cost 0.7 ms of CPU
    # a call at 100 calls/s (measured); events reach webhooks and SSE within this delay.
    event_poll_seconds: float = 1.0  # how often new events are looked for

    @property
    def ari_http_port(self) -> int:
        match = re.search(r":(\d+)", self.ari_url.split("//", 1)[-1])
        return int(match.group(1)) if match else 80

    @property
    def instance_dir(self) -> Path:
        """Asterisk's folder for this instance; inside the chroot when there is one."""
        return self.asterisk_root / "srv" / "voxcast" / self.instance_name

    @property
    def dns_nameserver_list(self) -> tuple[str, ...]:
        return tuple(name.strip() for name in self.dns_nameservers.split(",") if name.strip())

    @property
    def local_net_list(self) -> tuple[str, ...]:
        return tuple(net.strip() for net in self.local_nets.split(",") if net.strip())

    @property
    def operator_tenant_names(self) -> tuple[str, ...]:
        return tuple(name.strip() for name in self.operator_tenants.split(",") if name.strip())

    @property
    def tts_engine_chain(self) -> tuple[str, ...]:
        return tuple(name.strip() for name in self.tts_engines.split(",") if name.strip())

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.runtime_dir / 'voxcast.db'}"

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def _ip_of_version(text: str, version: int | None) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return version is None or address.version == version


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def _parse(kind: Any, text: str) -> Any:
    parsers: dict[Any, Callable[[str], Any]] = {
        int: int, float: float, str: str, Path: Path, Secret: Secret, bool: _boolean,
        "int": int, "float": float, "str": str, "Path": Path, "Secret": Secret,
        "bool": _boolean, "Path | None": Path,
    }
    return parsers[kind](text)


def _check(settings: Settings) -> list[str]:
    problems = []
    for name in ("webhook_timeout", "webhook_backoff_scale", "event_poll_seconds"):
        if getattr(settings, name) <= 0:
            problems.append(f"VOXCAST_{name.upper()} must be above 0")
    for name in ("webhook_concurrency", "webhook_secret_overlap"):
        if getattr(settings, name) < 1:
            problems.append(f"VOXCAST_{name.upper()} must be at least 1")
    if settings.calls_per_second <= 0:
        problems.append("VOXCAST_CALLS_PER_SECOND must be above 0")
    for name in ("max_concurrent_calls", "ring_timeout", "max_recipients",
                 "max_bulk_recipients", "max_playlist_items",
                 "ari_pool_size", "max_body_bytes", "max_call_seconds", "max_text_chars",
                 "media_cache_bytes", "media_max_bytes"):
        if getattr(settings, name) < 1:
            problems.append(f"VOXCAST_{name.upper()} must be at least 1")
    if settings.ari_pool_size >= 1000:
        problems.append("VOXCAST_ARI_POOL_SIZE must stay below Asterisk's sessionlimit (1000)")
    for name in ("port", "sip_port", "sip_tls_port", "ami_port", "rtp_start", "rtp_end"):
        if not 1 <= getattr(settings, name) <= 65535:
            problems.append(f"VOXCAST_{name.upper()} must be a port number (1-65535)")
    try:
        parse_configured_keys(settings.api_keys.value)
    except ValueError as error:
        problems.append(f"VOXCAST_API_KEYS: {error}")
    for name in ("media_deny_networks", "media_allow_networks"):
        try:
            parse_networks(getattr(settings, name))
        except ValueError as error:
            problems.append(f"VOXCAST_{name.upper()}: {error}")
    unknown = set(settings.tts_engine_chain) - {"piper", "flite", "espeak", "gtts"}
    if unknown:
        problems.append(f"VOXCAST_TTS_ENGINES names unknown engines: {sorted(unknown)}")
    if settings.trunk_host and not valid_trunk_host(settings.trunk_host):
        problems.append("VOXCAST_TRUNK_HOST must be host or host:port")
    if settings.trunks_file is not None and settings.trunk_host:
        problems.append("VOXCAST_TRUNK_HOST and VOXCAST_TRUNKS_FILE exclude each other: put "
                        "the host in the trunks file")
    if not _ip_of_version(settings.sip_address, 4):
        problems.append("VOXCAST_SIP_ADDRESS must be an IPv4 address")
    if settings.external_address and not _ip_of_version(settings.external_address, 4):
        problems.append("VOXCAST_EXTERNAL_ADDRESS must be an IPv4 address (the public one)")
    try:
        parse_networks(settings.local_nets)
    except ValueError as error:
        problems.append(f"VOXCAST_LOCAL_NETS: {error}")
    if settings.sip_address6 and not _ip_of_version(settings.sip_address6, 6):
        problems.append("VOXCAST_SIP_ADDRESS6 must be an IPv6 address (or empty: no IPv6)")
    if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
        problems.append("VOXCAST_TLS_CERT_FILE and VOXCAST_TLS_KEY_FILE go together")
    for name in ("tls_cert_file", "tls_key_file", "tls_ca_file"):
        path = getattr(settings, name)
        if path is not None and not path.is_file():
            problems.append(f"VOXCAST_{name.upper()} is not a readable file")
    if settings.tls_verify_server and settings.tls_ca_file is None:
        problems.append("VOXCAST_TLS_VERIFY_SERVER needs VOXCAST_TLS_CA_FILE (the CAs to trust)")
    if not 0 <= settings.rtp_timeout <= 86400:
        problems.append("VOXCAST_RTP_TIMEOUT must be 0-86400 seconds")
    if not all(_ip_of_version(server, None) for server in settings.dns_nameserver_list):
        problems.append("VOXCAST_DNS_NAMESERVERS must be IP addresses, comma-separated")
    if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", settings.instance_name) is None:
        problems.append("VOXCAST_INSTANCE_NAME must be 1-64 letters, digits, _ or -")
    if not settings.ari_url.startswith(("http://", "https://")):
        problems.append("VOXCAST_ARI_URL must be an http or https URL")
    return problems


def setting_names() -> frozenset[str]:
    return frozenset(PREFIX + setting.name.upper() for setting in fields(Settings))


def unknown_names(environ: Mapping[str, str]) -> list[str]:
    """A warning for each `VOXCAST_*` name nothing reads, with the likely intended name."""
    known = setting_names() | OTHER_NAMES
    warnings = []
    for name in sorted(environ):
        if not name.startswith(PREFIX) or name in known:
            continue
        # Compared without the shared prefix, which would make every name look alike.
        close = difflib.get_close_matches(name.removeprefix(PREFIX),
                                          sorted(k.removeprefix(PREFIX) for k in known),
                                          n=1, cutoff=0.6)
        hint = f"; did you mean {PREFIX}{close[0]}?" if close else ""
        warnings.append(f"{name} is not a Voxcast setting and is ignored{hint}")
    return warnings


def settings_from_environment(environ: Mapping[str, str]) -> Settings:
    """Read `VOXCAST_*` variables; raise SettingsError listing every bad one."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for setting in fields(Settings):
        raw = environ.get(PREFIX + setting.name.upper())
        if raw is None or raw == "":
            continue
        try:
            values[setting.name] = _parse(setting.type, raw)
        except (ValueError, KeyError):
            problems.append(f"{PREFIX}{setting.name.upper()} is not a valid {setting.type}")
    settings = Settings(**values)
    problems.extend(_check(settings))
    if problems:
        raise SettingsError("; ".join(problems))
    return settings
