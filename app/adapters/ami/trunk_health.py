"""Each trunk's health as Asterisk reports it over AMI: its outbound registration's state
(`Registry` events, `PJSIPShowRegistrationsOutbound`) and its contacts' reachability with the
round-trip time of the last qualify (`ContactStatus` events on each change,
`PJSIPShowEndpoint` for the current state: static contacts are not in `PJSIPShowContacts`).

Events arrive in plain callbacks; the queries run in one owned task, started at each AMI
login and after each trunk reload, and awaited at close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from app.adapters.ami.monitor import AmiMonitor

log = logging.getLogger(__name__)

REGISTERED = "Registered"
UNREACHABLE = "Unreachable"


@dataclass(frozen=True, slots=True)
class ContactState:
    status: str  # Reachable, Unreachable, Unknown, Created, ...
    rtt_ms: float | None


class TrunkHealth:
    def __init__(self, ami: AmiMonitor) -> None:
        self._ami = ami
        self.registrations: dict[str, str] = {}  # trunk -> Asterisk's status word
        self.contacts: dict[str, dict[str, ContactState]] = {}  # trunk (aor) -> uri -> state
        self._registration_names: dict[tuple[str, str], str] = {}  # (client, server) -> trunk
        self._endpoints: tuple[str, ...] = ()
        self._refreshing: asyncio.Task[None] | None = None
        ami.listen("Registry", self._on_registry)
        ami.listen("ContactStatus", self._on_contact_status)
        ami.on_login(self.refresh)

    @property
    def connected(self) -> bool:
        return self._ami.connected

    def expect(self, endpoints: tuple[str, ...],
               registrations: dict[tuple[str, str], str]) -> None:
        """The trunks now configured (their endpoints), and (client URI, server URI) of each
        registration -> trunk. State of trunks no longer configured is forgotten."""
        self._endpoints = endpoints
        self._registration_names = dict(registrations)
        self.registrations = {name: status for name, status in self.registrations.items()
                              if name in endpoints}
        self.contacts = {name: states for name, states in self.contacts.items()
                         if name in endpoints}

    def refresh(self) -> None:
        """Ask Asterisk for the current state of every registration and contact."""
        if self._refreshing is not None and not self._refreshing.done():
            self._refreshing.cancel()
        self._refreshing = asyncio.get_running_loop().create_task(self._query(),
                                                                  name="trunk-health-query")

    async def close(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._refreshing

    async def _query(self) -> None:
        try:
            registrations = await self._ami.query({"Action": "PJSIPShowRegistrationsOutbound"})
            contacts = [row for endpoint in self._endpoints for row in await self._ami.query(
                {"Action": "PJSIPShowEndpoint", "Endpoint": endpoint})]
        except (TimeoutError, ConnectionError, OSError) as error:
            log.warning("could not read trunk health over AMI: %s", error)
            return
        for row in registrations:
            if row.get("Event") == "OutboundRegistrationDetail" and row.get("ObjectName"):
                self.registrations[row["ObjectName"]] = row.get("Status", "")
        for row in contacts:
            if row.get("Event") == "ContactStatusDetail" and row.get("AOR"):
                self._set_contact(row["AOR"], row.get("URI", ""), row.get("Status", ""),
                                  row.get("RoundtripUsec", ""))

    def _on_registry(self, event: dict[str, str]) -> None:
        if event.get("ChannelType") != "PJSIP":
            return
        name = self._registration_names.get((event.get("Username", ""),
                                             event.get("Domain", "")))
        if name is not None:
            self.registrations[name] = event.get("Status", "")

    def _on_contact_status(self, event: dict[str, str]) -> None:
        if event.get("AOR"):
            self._set_contact(event["AOR"], event.get("URI", ""),
                              event.get("ContactStatus", ""), event.get("RoundtripUsec", ""))

    def _set_contact(self, aor: str, uri: str, status: str, rtt_usec: str) -> None:
        if status == "Removed":
            self.contacts.get(aor, {}).pop(uri, None)
            return
        rtt = int(rtt_usec) / 1000 if rtt_usec.isdigit() and int(rtt_usec) > 0 else None
        self.contacts.setdefault(aor, {})[uri] = ContactState(status, rtt)

    def registration(self, trunk: str) -> str | None:
        return self.registrations.get(trunk)

    def reachable(self, trunk: str) -> bool:
        """False only when every contact of the trunk failed its last qualify."""
        states = self.contacts.get(trunk, {})
        return not states or any(state.status != UNREACHABLE for state in states.values())
