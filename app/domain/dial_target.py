"""Dial targets and caller ids: a strict grammar, so nothing can inject into a dial string.

A target becomes part of `PJSIP/<endpoint>/<uri>` and of SIP headers, so only a conservative
subset of RFC 3261 is accepted: `sip:` or `sips:`, an optional user of unreserved characters,
a host name, IPv4 or bracketed IPv6 address, an optional port and an optional transport.
Commas, ampersands, parentheses, quotes, whitespace, control characters and CR/LF never pass.
"""

from __future__ import annotations

import ipaddress
import re

MAX_TARGET_LENGTH = 256

_SIP_URI = re.compile(
    r"(?P<scheme>sips?):"
    r"(?:(?P<user>[A-Za-z0-9_.!~*+\-]{1,64})@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9](?:[A-Za-z0-9\-.]{0,251}[A-Za-z0-9])?)"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?:;transport=(?P<transport>udp|tcp|tls))?",
)
_CALLER_ID = re.compile(r"[A-Za-z0-9_.+\-]{1,64}")


class InvalidDialTarget(ValueError):
    """The text is not an acceptable dial target or caller id."""


def normalise_sip_uri(text: str) -> str:
    """The URI itself if it is an acceptable SIP target, else raise InvalidDialTarget."""
    if len(text) > MAX_TARGET_LENGTH:
        raise InvalidDialTarget(f"must be at most {MAX_TARGET_LENGTH} characters")
    match = _SIP_URI.fullmatch(text)
    if match is None:
        raise InvalidDialTarget(
            "must be a SIP URI like sip:alice@192.0.2.10:5060 (letters, digits and _.!~*+- "
            "in the user part; no spaces, quotes, commas or other punctuation)")
    host = match["host"]
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError as error:
            raise InvalidDialTarget("has an invalid IPv6 address") from error
    elif re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError as error:
            raise InvalidDialTarget("has an invalid IPv4 address") from error
    if match["port"] is not None and not 1 <= int(match["port"]) <= 65535:
        raise InvalidDialTarget("has a port outside 1-65535")
    return text


def validate_caller_id(text: str) -> str:
    """A caller id that is safe in a SIP From header and in ARI's callerId."""
    if _CALLER_ID.fullmatch(text) is None:
        raise InvalidDialTarget(
            "must be 1-64 letters, digits or _.+- (a name or number, no spaces or quotes)")
    return text


def ari_endpoint(sip_endpoint: str, target: str) -> str:
    """The ARI originate endpoint: the template PJSIP endpoint dialling the target URI."""
    return f"PJSIP/{sip_endpoint}/{target}"
