"""Dial targets and caller ids: a strict grammar, so nothing can inject into a dial string.

A target becomes part of `PJSIP/<endpoint>/<uri>` and of SIP headers, so only a conservative
subset of RFC 3261 is accepted: `sip:` or `sips:`, an optional user of unreserved characters,
a host name, IPv4 or bracketed IPv6 address, an optional port and an optional transport; or an
E.164 number (`+15551234567`, `tel:+15551234567`) dialled through the configured trunk.
Commas, ampersands, parentheses, quotes, whitespace, control characters and CR/LF never pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_TARGET_LENGTH = 256

# The grammar as regular expressions only (no lookarounds), so the same text is both the
# service's check and the OpenAPI document's `pattern`: what the schema allows, the service
# accepts, and nothing else.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_H16 = r"[0-9A-Fa-f]{1,4}"
_LS32 = rf"(?:{_H16}:{_H16}|{IPV4})"
IPV6 = "(?:" + "|".join((  # RFC 3986's IPv6address, branch by branch
    rf"(?:{_H16}:){{6}}{_LS32}",
    rf"::(?:{_H16}:){{5}}{_LS32}",
    rf"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
    rf"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
    rf"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
    rf"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
    rf"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
    rf"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
    rf"(?:(?:{_H16}:){{0,6}}{_H16})?::",
)) + ")"
# RFC 3261's (and RFC 2396's) hostname: dot-separated labels, the last one starting with a
# letter, so a name of digits and dots can only be an IPv4 address.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_TOP_LABEL = r"[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST_NAME = rf"(?:{_LABEL}\.)*{_TOP_LABEL}"
HOST = rf"(?:{IPV4}|\[{IPV6}\]|{_HOST_NAME})"
PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
_SIP_USER = r"[A-Za-z0-9_.!~*+\-]{1,64}"
SIP_URI = rf"sips?:(?:{_SIP_USER}@)?{HOST}(?::{PORT})?(?:;transport=(?:udp|tcp|tls))?"
E164 = r"(?:tel:)?\+[1-9][0-9]{6,14}"
TARGET_PATTERN = rf"^(?:{SIP_URI}|{E164})$"
SIP_TARGET_PATTERN = rf"^{SIP_URI}$"  # what is accepted where no trunk takes phone numbers
CALLER_ID_PATTERN = r"^[A-Za-z0-9_.+\-]{1,64}$"

_SIP_URI = re.compile(SIP_URI)
_CALLER_ID = re.compile(CALLER_ID_PATTERN)
_E164 = re.compile(r"(?:tel:)?(\+[1-9][0-9]{6,14})")
_TRUNK_HOST = re.compile(rf"{HOST}(?::{PORT})?")


PROTOCOLS = ("udp", "tcp", "tls")


class InvalidDialTarget(ValueError):
    """The text is not an acceptable dial target or caller id."""


@dataclass(frozen=True, slots=True)
class SipRoute:
    """How a target is reached: the transport protocol and the address family."""

    protocol: str  # udp, tcp or tls
    ipv6: bool


def endpoint_name(base: str, route: SipRoute) -> str:
    """The template PJSIP endpoint for a route: `base` for UDP over IPv4, else suffixed.

    One endpoint per transport: media is then offered on the right address family, and a
    URI's `;transport=` always matches its endpoint's transport.
    """
    if route == SipRoute("udp", ipv6=False):
        return base
    return f"{base}-{route.protocol}{'6' if route.ipv6 else ''}"


def route_of(uri: str) -> SipRoute:
    """The route of a SIP URI (as `dial_uri` gives it): `sips:` is TLS; host names go over
    IPv4 (A records: over UDP, PJSIP would not fall back from an AAAA answer)."""
    if _SIP_URI.fullmatch(uri) is None:
        raise InvalidDialTarget("not a SIP URI")
    scheme, _, rest = uri.partition(":")
    transport = rest.partition(";transport=")[2]
    protocol = "tls" if scheme == "sips" else (transport or "udp")
    return SipRoute(protocol, ipv6=has_ipv6_host(uri))


def has_ipv6_host(uri: str) -> bool:
    """Whether an accepted SIP URI's host is a bracketed IPv6 address (no grammar check: for
    URIs `normalise_sip_uri` passed)."""
    return uri.partition(";")[0].partition(":")[2].rpartition("@")[2].startswith("[")


def is_phone_number(text: str) -> bool:
    """`tel:+15551234567` or `+15551234567`: E.164, dialled through the trunk."""
    return _E164.fullmatch(text) is not None


def normalise_target(text: str) -> str:
    """The target itself if it is an acceptable SIP URI or E.164 number, else raise."""
    if is_phone_number(text):
        return text
    return normalise_sip_uri(text)


def valid_trunk_host(text: str) -> bool:
    return _TRUNK_HOST.fullmatch(text) is not None


def dial_uri(target: str, trunk_host: str | None) -> str:
    """The SIP URI to dial: SIP targets as they are, numbers as sip:+NUMBER@trunk."""
    number = _E164.fullmatch(target)
    if number is None:
        return target
    if not trunk_host:
        raise InvalidDialTarget("a phone number needs a trunk: set VOXCAST_TRUNK_HOST")
    return f"sip:{number.group(1)}@{trunk_host}"


def normalise_sip_uri(text: str) -> str:
    """The URI itself if it is an acceptable SIP target, else raise InvalidDialTarget."""
    if len(text) > MAX_TARGET_LENGTH:
        raise InvalidDialTarget(f"must be at most {MAX_TARGET_LENGTH} characters")
    if _SIP_URI.fullmatch(text) is None:
        raise InvalidDialTarget(
            "must be a SIP URI like sip:alice@192.0.2.10:5060 (letters, digits and _.!~*+- "
            "in the user part; a host name, IPv4 or [IPv6] address; a port 1-65535; no "
            "spaces, quotes, commas or other punctuation) or an E.164 number like "
            "+15551234567 or tel:+15551234567")
    return text


def validate_caller_id(text: str) -> str:
    """A caller id that is safe in a SIP From header and in ARI's callerId."""
    if _CALLER_ID.fullmatch(text) is None:
        raise InvalidDialTarget(
            "must be 1-64 letters, digits or _.+- (a name or number, no spaces or quotes)")
    return text


def ari_endpoint(sip_endpoint: str, uri: str) -> str:
    """The ARI originate endpoint: the template PJSIP endpoint for the URI's route, dialling it."""
    return f"PJSIP/{endpoint_name(sip_endpoint, route_of(uri))}/{uri}"
