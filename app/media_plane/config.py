"""Render the Asterisk configuration of one instance from asterisk/templates, validated first."""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import jinja2

from app.atomic_file import write_atomically
from app.domain.dial_target import PROTOCOLS, SipRoute, endpoint_name
from app.domain.trunks import TrunkTable
from app.media_plane.trunk_config import trunk_context

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "asterisk" / "templates"

# Strict allow-lists: a value ends up inside an Asterisk config line, where a newline, ";",
# "[", "]" or "=" could start a comment, a section or another option.
_PASSWORD = re.compile(r"[A-Za-z0-9_-]{16,128}")
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PATH = re.compile(r"/[A-Za-z0-9_./-]*")
# Asterisk's control socket is <instance_dir>/run/asterisk.ctl; a Unix socket path must fit
# in 108 bytes.
_MAX_PATH_LEN = 90

_PASSWORD_FIELDS = ("ari_password", "ami_password")
_NAME_FIELDS = ("ari_user", "ami_user", "sip_endpoint")
_PORT_FIELDS = ("http_port", "sip_port", "sip_tls_port", "ami_port", "rtp_start", "rtp_end")
_FILE_FIELDS = ("tls_cert_file", "tls_key_file")


class ConfigValueError(ValueError):
    """A configuration value is unsafe or inconsistent; `field` names it (never the value)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


@dataclass(frozen=True)
class AsteriskConfigValues:
    """Everything the templates need. `instance_dir` is the folder as Asterisk sees it."""

    instance_dir: str
    http_port: int
    sip_port: int
    ami_port: int
    rtp_start: int
    rtp_end: int
    ari_user: str
    ari_password: str
    ami_user: str
    ami_password: str
    sip_endpoint: str
    module_dir: str  # Asterisk's modules folder as Asterisk sees it (layout.find_module_dir)
    sip_address: str = "127.0.0.1"
    sip_address6: str = ""  # IPv6 transports and endpoints only when set
    sip_tls_port: int = 5061
    # Files as Asterisk sees them (inside its root): the TLS transport's certificate and key,
    # and the CA list that far ends' certificates are checked against when verifying.
    tls_cert_file: str = ""  # empty: no TLS transports
    tls_key_file: str = ""
    tls_ca_file: str = ""
    tls_verify_server: bool = False
    rtp_timeout: int = 30  # seconds without RTP from an answered far end; 0: never
    dns_nameservers: tuple[str, ...] = ()  # empty: the resolv.conf inside Asterisk's root
    trunks: TrunkTable = TrunkTable()  # validated by app.domain.trunks
    external_address: str = ""  # behind NAT: the public IPv4 address announced in SIP and SDP
    local_nets: tuple[str, ...] = ()  # networks reached without NAT

    def __repr__(self) -> str:
        shown = (
            f"{f.name}={getattr(self, f.name)!r}"
            for f in fields(self)
            if f.name not in (*_PASSWORD_FIELDS, "trunks")
        )
        return f"AsteriskConfigValues({', '.join(shown)}, passwords=<hidden>)"


def _check_string(values: AsteriskConfigValues, field: str, pattern: re.Pattern[str]) -> str:
    value = getattr(values, field)
    if not isinstance(value, str):
        raise ConfigValueError(field, "must be a string")
    # fullmatch with explicit ASCII classes: no "$"-before-newline or Unicode-digit surprises.
    if not pattern.fullmatch(value):
        raise ConfigValueError(field, f"must match {pattern.pattern}")
    return value


def _check_port(values: AsteriskConfigValues, field: str) -> int:
    value = getattr(values, field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigValueError(field, "must be an integer")
    if not 1 <= value <= 65535:
        raise ConfigValueError(field, "must be between 1 and 65535")
    return value


def _check_address(value: str, field: str, version: int) -> None:
    try:
        valid = ipaddress.ip_address(value).version == version
    except ValueError:
        valid = False
    if not valid:
        raise ConfigValueError(field, f"must be an IPv{version} address")


def validate_config_values(values: AsteriskConfigValues) -> None:
    """Raise ConfigValueError for the first value that is unsafe to put in a config file."""
    module_dir = _check_string(values, "module_dir", _PATH)
    if posixpath.normpath(module_dir) != module_dir:
        raise ConfigValueError("module_dir", "must be a normalised absolute folder")
    instance_dir = _check_string(values, "instance_dir", _PATH)
    if posixpath.normpath(instance_dir) != instance_dir or instance_dir == "/":
        raise ConfigValueError("instance_dir", "must be a normalised folder below /")
    if len(instance_dir) > _MAX_PATH_LEN:
        raise ConfigValueError("instance_dir", f"must be at most {_MAX_PATH_LEN} characters")
    for field in _PASSWORD_FIELDS:
        _check_string(values, field, _PASSWORD)
    for field in _NAME_FIELDS:
        _check_string(values, field, _NAME)
    _check_address(values.sip_address, "sip_address", 4)
    if values.sip_address6:
        _check_address(values.sip_address6, "sip_address6", 6)
    if values.external_address:
        _check_address(values.external_address, "external_address", 4)
    for net in values.local_nets:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError as error:
            raise ConfigValueError("local_nets", "must be networks like 10.0.0.0/8") from error
    for server in values.dns_nameservers:
        try:
            ipaddress.ip_address(server)
        except ValueError as error:
            raise ConfigValueError("dns_nameservers", "must be IP addresses") from error
    if bool(values.tls_cert_file) != bool(values.tls_key_file):
        raise ConfigValueError("tls_key_file", "goes together with tls_cert_file")
    if values.tls_cert_file:
        for field in _FILE_FIELDS:
            _check_string(values, field, _PATH)
    if values.tls_ca_file:
        _check_string(values, "tls_ca_file", _PATH)
    elif values.tls_verify_server:
        raise ConfigValueError("tls_ca_file", "is needed to verify far ends' certificates")
    if isinstance(values.rtp_timeout, bool) or not isinstance(values.rtp_timeout, int) \
            or not 0 <= values.rtp_timeout <= 86400:
        raise ConfigValueError("rtp_timeout", "must be 0-86400 seconds")
    ports = {field: _check_port(values, field) for field in _PORT_FIELDS}
    if ports["rtp_start"] >= ports["rtp_end"]:
        raise ConfigValueError("rtp_end", "must be greater than rtp_start")
    if ports["http_port"] == ports["ami_port"]:
        raise ConfigValueError("ami_port", "must differ from http_port (both TCP)")
    if ports["rtp_start"] <= ports["sip_port"] <= ports["rtp_end"]:
        raise ConfigValueError("sip_port", "must be outside the RTP range (both UDP)")
    if ports["sip_tls_port"] in (ports["sip_port"], ports["http_port"], ports["ami_port"]):
        raise ConfigValueError("sip_tls_port", "must differ from the other TCP ports")
    if ports["sip_port"] in (ports["http_port"], ports["ami_port"]):
        raise ConfigValueError("sip_port", "must differ from the HTTP and AMI ports (SIP "
                               "listens on TCP too)")


def _transports_and_endpoints(values: AsteriskConfigValues) -> dict[str, list[dict[str, str]]]:
    """Every transport (protocol x address family) and the template endpoint that uses it."""
    families = [(False, values.sip_address)]
    if values.sip_address6:
        families.append((True, values.sip_address6))
    transports, endpoints = [], []
    for ipv6, address in families:
        host = f"[{address}]" if ipv6 else address
        for protocol in PROTOCOLS:
            if protocol == "tls" and not values.tls_cert_file:
                continue
            port = values.sip_tls_port if protocol == "tls" else values.sip_port
            name = f"voxcast-{protocol}{'6' if ipv6 else ''}"
            transports.append({"name": name, "protocol": protocol, "bind": f"{host}:{port}"})
            endpoints.append({"name": endpoint_name(values.sip_endpoint, SipRoute(protocol, ipv6)),
                              "transport": name, "media_address": address})
    return {"transports": transports, "endpoints": endpoints}


def _environment() -> jinja2.Environment:
    # Asterisk config, not HTML: escaping would corrupt it; values are validated instead.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701
    )


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600, atomically (a reader never sees half a file)."""
    write_atomically(path, text.encode("ascii"), mode=0o600)


TRUNK_TEMPLATES = ("pjsip_trunks.conf.j2", "pjsip_trunk_auth.conf.j2")


def render_asterisk_config(values: AsteriskConfigValues, out_dir: Path) -> list[Path]:
    """Validate `values`, render every template into `out_dir`, return the written files."""
    return _render(values, out_dir, lambda name: name.endswith(".conf.j2"))


def render_trunk_config(values: AsteriskConfigValues, out_dir: Path) -> list[Path]:
    """Only the trunk files (for a reload: the rest of the running config stays as it is)."""
    return _render(values, out_dir, lambda name: name in TRUNK_TEMPLATES)


def _render(values: AsteriskConfigValues, out_dir: Path,
            chosen: Callable[[str], bool]) -> list[Path]:
    validate_config_values(values)
    env = _environment()
    context = {f.name: getattr(values, f.name) for f in fields(values)}
    context.update(_transports_and_endpoints(values))
    context["trunks"] = trunk_context(values.trunks)
    rendered = {
        name.removesuffix(".j2"): env.get_template(name).render(context)
        for name in sorted(env.list_templates(filter_func=chosen))
    }
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    written = []
    for name, text in rendered.items():
        target = out_dir / name
        _write_private(target, text)
        written.append(target)
    return written
