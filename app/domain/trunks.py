"""SIP trunks as the admin describes them: the file's schema, number formats, caller-ID policy
and routing by prefix. Pure: no I/O, no Asterisk.

Every string that ends up in Asterisk's configuration is checked against a strict pattern
here, so a value can never start a comment (`;`), a section (`[`), another option or line.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, model_validator

from app.domain.dial_target import CALLER_ID_PATTERN, HOST, PROTOCOLS

NAME_PATTERN = r"^[A-Za-z0-9_-]{1,40}$"
_USER = r"^[A-Za-z0-9_.+-]{1,64}$"
# Digest passwords: printable ASCII without what an Asterisk config line gives meaning to
# (`;` comment, `[`/`]` section, `=`, `#`, quotes, backslash) and without spaces.
_PASSWORD = r"^[A-Za-z0-9_.,:/+@!%^&*()~?{}<>|$-]{1,128}$"  # noqa: S105 - a pattern
_HOST = rf"^(?:{HOST})$"
_PREFIX = r"^\+?[0-9]{0,15}$"
_CALLER_PATTERN = r"^[A-Za-z0-9_.+*?-]{1,64}$"
Codec = Literal["ulaw", "alaw"]  # what the media plane loads (codec_ulaw, codec_alaw)
CODECS: tuple[Codec, ...] = ("ulaw", "alaw")
_E164 = re.compile(r"\+([1-9][0-9]{6,14})")

Port = Annotated[int, Field(ge=1, le=65535, strict=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrunkHost(_Strict):
    host: Annotated[str, Field(pattern=_HOST)]
    port: Port = 5060
    transport: Literal["udp", "tcp", "tls"] = "udp"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def uri(self) -> str:
        """The host as a SIP URI, transport included (PJSIP takes only an escaped `;` in a
        config value: the template adds the backslash)."""
        suffix = "" if self.transport == "udp" else f";transport={self.transport}"
        return f"sip:{self.address}{suffix}"


class TrunkAuth(_Strict):
    username: Annotated[str, Field(pattern=_USER)]
    password: Annotated[str, Field(pattern=_PASSWORD, repr=False)]
    realm: Annotated[str, Field(pattern=_HOST)] | None = None


class TrunkRegistration(_Strict):
    enabled: StrictBool = True
    expiry: Annotated[int, Field(ge=60, le=86400, strict=True)] = 300
    contact_user: Annotated[str, Field(pattern=_USER)] | None = None  # default: the username
    # 0: a REGISTER answered 403 is not retried until the file is reloaded.
    forbidden_retry_seconds: Annotated[int, Field(ge=0, le=86400, strict=True)] = 0


class TrunkFrom(_Strict):
    user: Annotated[str, Field(pattern=_USER)] | None = None  # fixes the From user
    domain: Annotated[str, Field(pattern=_HOST)] | None = None


class CallerIdPolicy(_Strict):
    default: Annotated[str, Field(pattern=CALLER_ID_PATTERN)] | None = None
    # Values or shell-style patterns (`+4930123*`) a request's `from` may use; none: any.
    allowed: tuple[Annotated[str, Field(pattern=_CALLER_PATTERN)], ...] | None = None

    def allows(self, caller: str) -> bool:
        if self.allowed is None:
            return True
        return any(fnmatch.fnmatchcase(caller, pattern) for pattern in self.allowed)


class NumberFormat(_Strict):
    """How the provider wants numbers: `+4930123` (e164_plus), `4930123` (e164) or
    `030123` (national: the country code replaced by the national prefix; other countries
    get the international prefix), then `strip` leading digits removed and `add` put before."""

    format: Literal["e164_plus", "e164", "national"] = "e164_plus"
    country_code: Annotated[str, Field(pattern=r"^[1-9][0-9]{0,2}$")] | None = None
    national_prefix: Annotated[str, Field(pattern=r"^[0-9]{0,4}$")] = "0"
    international_prefix: Annotated[str, Field(pattern=r"^[0-9]{0,4}$")] = "00"
    strip: Annotated[int, Field(ge=0, le=15, strict=True)] = 0
    add: Annotated[str, Field(pattern=r"^[0-9*#+]{0,10}$")] = ""

    @model_validator(mode="after")
    def _national_needs_country(self) -> NumberFormat:
        if self.format == "national" and self.country_code is None:
            raise ValueError("format national needs country_code")
        return self

    def as_number(self, e164_digits: str) -> str:
        """An E.164 number (digits, no `+`) in this format, before strip/add."""
        if self.format == "e164_plus":
            return f"+{e164_digits}"
        if self.format == "national":
            assert self.country_code is not None  # noqa: S101 - checked by the validator
            if e164_digits.startswith(self.country_code):
                return self.national_prefix + e164_digits.removeprefix(self.country_code)
            return self.international_prefix + e164_digits
        return e164_digits

    def dialled(self, e164_digits: str) -> str:
        return self.add + self.as_number(e164_digits)[self.strip:]


class TrunkSpec(_Strict):
    """One trunk as written in the file (its name is the table's key)."""

    hosts: Annotated[tuple[TrunkHost, ...], Field(min_length=1, max_length=8)]
    auth: TrunkAuth | None = None  # none: the provider knows us by our address
    registration: TrunkRegistration | None = None
    from_: TrunkFrom = Field(default=TrunkFrom(), alias="from")
    caller_id: CallerIdPolicy = CallerIdPolicy()
    numbers: NumberFormat = NumberFormat()
    prefixes: Annotated[tuple[Annotated[str, Field(pattern=_PREFIX)], ...],
                        Field(min_length=1)] = ("+",)
    priority: Annotated[int, Field(ge=0, le=1000, strict=True)] = 100  # lower goes first
    max_concurrent: Annotated[int, Field(ge=1, le=10000, strict=True)] = 10
    calls_per_second: Annotated[float, Field(gt=0, le=1000)] = 1.0
    codecs: Annotated[tuple[Codec, ...], Field(min_length=1)] = CODECS
    failover_codes: tuple[Annotated[int, Field(ge=400, le=699, strict=True)], ...] = (503,)
    qualify_seconds: Annotated[int, Field(ge=0, le=3600, strict=True)] = 30  # 0: no OPTIONS

    @model_validator(mode="after")
    def _registration_needs_auth(self) -> TrunkSpec:
        if self.registration is not None and self.registration.enabled and self.auth is None:
            raise ValueError("registration needs [auth] (username and password)")
        return self


@dataclass(frozen=True, slots=True)
class Trunk:
    name: str
    spec: TrunkSpec

    @property
    def registers(self) -> bool:
        return self.spec.registration is not None and self.spec.registration.enabled

    @property
    def transport(self) -> str:
        return self.spec.hosts[0].transport

    def registration_uris(self) -> tuple[str, str] | None:
        """(client URI, server URI) of its registration, as Asterisk names it in events."""
        if not self.registers:
            return None
        assert self.spec.auth is not None  # noqa: S101 - registration needs auth
        first = self.spec.hosts[0]
        return f"sip:{self.spec.auth.username}@{first.uri.removeprefix('sip:')}", first.uri

    def prefix_length(self, digits: str) -> int | None:
        """The longest of this trunk's prefixes `digits` starts with (None: not served)."""
        lengths = [len(prefix.lstrip("+")) for prefix in self.spec.prefixes
                   if digits.startswith(prefix.lstrip("+"))]
        return max(lengths) if lengths else None

    def caller_for(self, caller: str) -> str:
        """The caller id as this trunk sends it: a number in the trunk's format (without
        strip/add); a name (not `+E.164`) is replaced by the trunk's default when it has one."""
        number = _E164.fullmatch(caller)
        if number is None and self.spec.caller_id.default is not None:
            number = _E164.fullmatch(self.spec.caller_id.default)
            if number is None:
                return self.spec.caller_id.default
        return self.spec.numbers.as_number(number.group(1)) if number else caller

    def dial_uri(self, e164: str, host: TrunkHost) -> str:
        digits = e164.removeprefix("tel:").removeprefix("+")
        return f"sip:{self.spec.numbers.dialled(digits)}@{host.uri.removeprefix('sip:')}"


class TrunkFileError(ValueError):
    """The trunks file is not usable; the message names the trunk and the key."""


def _located(location: Sequence[int | str]) -> str:
    if not location:
        return "the file"
    trunk, keys = location[0], location[1:]
    path = "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in keys)
    return f"trunk {trunk!r}" + (f", key {path.lstrip('.')!r}" if path else "")


def parse_trunks(document: Mapping[str, Any], *, transports: Iterable[str] = PROTOCOLS
                 ) -> TrunkTable:
    """The `[trunks.NAME]` tables of a parsed TOML document, validated; else TrunkFileError
    naming each trunk and key at fault (never a value: a password could be among them)."""
    extra = set(document) - {"trunks"}
    if extra:
        raise TrunkFileError(f"unknown top-level keys {sorted(extra)}: trunks are "
                             "[trunks.NAME] tables")
    tables = document.get("trunks", {})
    if not isinstance(tables, dict):
        raise TrunkFileError("trunks must be tables: [trunks.NAME]")
    problems, trunks = [], []
    for name, table in tables.items():
        if re.fullmatch(NAME_PATTERN, name) is None:
            problems.append(f"trunk {name!r}: the name must be 1-40 letters, digits, _ or -")
            continue
        try:
            spec = TrunkSpec.model_validate(table)
        except ValidationError as error:
            for problem in error.errors(include_url=False, include_input=False):
                location = [name, *(part for part in problem["loc"]
                                    if not str(part).startswith("function-"))]
                problems.append(f"{_located(location)}: "
                                f"{problem['msg'].removeprefix('Value error, ')}")
            continue
        for host in spec.hosts:
            if host.transport not in transports:
                problems.append(f"trunk {name!r}, key 'hosts': transport {host.transport} is "
                                "not enabled on this media plane")
        trunks.append(Trunk(name, spec))
    if problems:
        raise TrunkFileError("; ".join(problems))
    return TrunkTable(tuple(trunks))


@dataclass(frozen=True, slots=True)
class TrunkTable:
    trunks: tuple[Trunk, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.trunks)

    def get(self, name: str) -> Trunk | None:
        return next((trunk for trunk in self.trunks if trunk.name == name), None)

    def candidates(self, e164: str, named: str | None = None) -> list[Trunk]:
        """The trunks that may carry a number, best first: the named one alone; else every
        trunk serving it, by longest prefix, then priority (lower first), then name."""
        if named is not None:
            trunk = self.get(named)
            return [] if trunk is None else [trunk]
        digits = e164.removeprefix("tel:").removeprefix("+")
        served = [(length, trunk) for trunk in self.trunks
                  if (length := trunk.prefix_length(digits)) is not None]
        served.sort(key=lambda pair: (-pair[0], pair[1].spec.priority, pair[1].name))
        return [trunk for _, trunk in served]

    def route_problem(self, e164: str, named: str | None, caller: str) -> tuple[str, str] | None:
        """Why this number cannot go out with this caller id, as (field, message); None: it can.
        `field` is "trunk", "to" or "from"."""
        if named is not None and self.get(named) is None:
            return "trunk", "no trunk of that name is configured"
        trunks = self.candidates(e164, named)
        if not trunks:
            return "to", "no trunk serves this number"
        if not any(trunk.spec.caller_id.allows(caller) for trunk in trunks):
            names = ", ".join(trunk.name for trunk in trunks)
            return "from", f"not a caller id the trunk ({names}) allows"
        return None

