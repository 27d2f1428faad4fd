"""The trunks in use: which may take a call now (health, concurrent calls, calls per second),
what each carried, and reloading the trunks file without a restart.

PJSIP has no per-endpoint call limit, and an ARI originate skips the dialplan, so the limits
of each trunk are held here: a call takes a trunk (`take`) right before its originate and
gives it back (`release`) when its channel is gone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.adapters.ami.trunk_health import REGISTERED, TrunkHealth
from app.domain.broadcasts import ClaimedCall
from app.domain.trunks import Trunk, TrunkHost, TrunkTable

log = logging.getLogger(__name__)

RATE_WINDOW_SECONDS = 10.0  # calls per second as shown: over this window
RECENT_OUTCOMES = 50
FAILOVER_POLL_SECONDS = 0.02


@dataclass(slots=True)
class _Load:
    live: int = 0
    next_slot: float = 0.0  # monotonic: the earliest next originate (interval pacing)
    sent: deque[float] = field(default_factory=deque)  # monotonic originate times, recent
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_OUTCOMES))
    outcomes: Counter[str] = field(default_factory=Counter)
    peak_live: int = 0


@dataclass(slots=True)
class TrunkRoute:
    """One call's way out: the trunk holding it now, the ones left to fail over to, and
    what it failed over from ("trunk: why")."""

    trunk: Trunk
    later: list[Trunk]
    failed_over_from: list[str]


class TrunkService:
    def __init__(self, table: TrunkTable, health: TrunkHealth | None,
                 reloader: Callable[[], Awaitable[TrunkTable]] | None = None) -> None:
        self._table = table
        self._health = health
        self._reloader = reloader
        self._loads: dict[str, _Load] = {}
        # Trunks a failing-over call waits for: it goes before new calls (it holds a caller
        # who is already being dialled).
        self._failover_waits: Counter[str] = Counter()
        self._listeners: list[Callable[[], None]] = []
        self._reload_lock = asyncio.Lock()
        self._expect_health()

    @property
    def table(self) -> TrunkTable:
        return self._table

    def on_change(self, callback: Callable[[], None]) -> None:
        """Called whenever a trunk may have capacity again (a call released it, a reload)."""
        self._listeners.append(callback)

    def _changed(self) -> None:
        for callback in self._listeners:
            callback()

    def _load(self, name: str) -> _Load:
        return self._loads.setdefault(name, _Load())

    # --- health ------------------------------------------------------------------------------

    def state(self, trunk: Trunk) -> str:
        """`ready`, or why not: `registering`, `rejected`, `unregistered`, `failed`,
        `unreachable` (Asterisk's words, lower-cased)."""
        if self._health is None:
            return "ready"  # nobody to ask (no AMI): trust the file
        if trunk.registers:
            status = self._health.registration(trunk.name)
            if status != REGISTERED:
                return (status or "registering").lower()
        if not self._health.reachable(trunk.name):
            return "unreachable"
        return "ready"

    def host_for(self, trunk: Trunk) -> TrunkHost:
        """The first host whose contact was not found unreachable by its last qualify."""
        if self._health is not None:
            for host in trunk.spec.hosts:
                states = self._health.contacts.get(trunk.name, {})
                state = states.get(host.uri)
                if state is None or state.status != "Unreachable":
                    return host
        return trunk.spec.hosts[0]

    # --- routing and limits ------------------------------------------------------------------

    def candidates(self, call: ClaimedCall) -> list[Trunk]:
        """The trunks that may carry this call, best first (its caller id allowed)."""
        return [trunk for trunk in self._table.candidates(call.target, call.trunk)
                if trunk.spec.caller_id.allows(call.caller)]

    def take(self, trunks: Sequence[Trunk], *, failing_over: bool = False) -> TrunkRoute | None:
        """The first healthy trunk with a free call and a free pacing slot now, taken; the
        unhealthy ones passed over are what the route failed over from. None: none free.
        A new call leaves a trunk to the calls failing over to it."""
        now = time.monotonic()
        passed: list[str] = []
        for position, trunk in enumerate(trunks):
            state = self.state(trunk)
            if state != "ready":
                passed.append(f"{trunk.name}: {state}")
                continue
            load = self._load(trunk.name)
            if load.live >= trunk.spec.max_concurrent or now < load.next_slot or (
                    not failing_over and self._failover_waits[trunk.name]):
                continue
            load.live += 1
            load.peak_live = max(load.peak_live, load.live)
            load.next_slot = max(load.next_slot, now) + 1.0 / trunk.spec.calls_per_second
            load.sent.append(now)
            while load.sent and load.sent[0] < now - RATE_WINDOW_SECONDS:
                load.sent.popleft()
            return TrunkRoute(trunk, list(trunks[position + 1:]), passed)
        return None

    async def take_for_failover(self, trunks: Sequence[Trunk],
                                wait_seconds: float) -> TrunkRoute | None:
        """`take`, waiting up to `wait_seconds` for a call or pacing slot to free up, ahead of
        new calls; None when none frees up or none of them is healthy."""
        deadline = time.monotonic() + wait_seconds
        names = [trunk.name for trunk in trunks]
        self._failover_waits.update(names)
        try:
            while True:
                route = self.take(trunks, failing_over=True)
                if route is not None or not self.any_ready(trunks) \
                        or time.monotonic() >= deadline:
                    return route
                await asyncio.sleep(FAILOVER_POLL_SECONDS)
        finally:
            self._failover_waits.subtract(names)
            self._changed()

    def adopt(self, name: str) -> TrunkRoute | None:
        """A call still live on trunk `name` from before a restart: it counts in the trunk's
        limit again until it ends (None: no such trunk any more)."""
        trunk = self._table.get(name)
        if trunk is None:
            return None
        load = self._load(name)
        load.live += 1
        load.peak_live = max(load.peak_live, load.live)
        return TrunkRoute(trunk, [], [])

    def any_ready(self, trunks: Sequence[Trunk]) -> bool:
        return any(self.state(trunk) == "ready" for trunk in trunks)

    def release(self, trunk: Trunk, outcome: str) -> None:
        """The call's channel on `trunk` is gone; `outcome` is its SIP code or result."""
        load = self._load(trunk.name)
        load.live = max(0, load.live - 1)
        load.recent.append(outcome)
        load.outcomes[outcome] += 1
        self._changed()

    async def close(self) -> None:
        if self._health is not None:
            await self._health.close()

    # --- reload ------------------------------------------------------------------------------

    async def reload(self) -> TrunkTable:
        """Read the trunks file again, render it and have Asterisk reload PJSIP. A bad file
        raises TrunkFileError and changes nothing."""
        if self._reloader is None:
            raise RuntimeError("this service has no trunks file to reload")
        async with self._reload_lock:
            table = await self._reloader()
            self._table = table
            self._expect_health()
            if self._health is not None:
                self._health.refresh()
            log.info("trunks reloaded: %s", ", ".join(t.name for t in table.trunks) or "none")
            self._changed()
            return table

    def _expect_health(self) -> None:
        if self._health is None:
            return
        self._health.expect(tuple(trunk.name for trunk in self._table.trunks),
                            {uris: trunk.name for trunk in self._table.trunks
                             if (uris := trunk.registration_uris()) is not None})

    # --- what GET /trunks shows --------------------------------------------------------------

    def snapshot(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        shown = []
        for trunk in self._table.trunks:
            load = self._load(trunk.name)
            recent = [moment for moment in load.sent if moment >= now - RATE_WINDOW_SECONDS]
            contacts = {} if self._health is None else self._health.contacts.get(trunk.name, {})
            shown.append({
                "name": trunk.name,
                "state": self.state(trunk),
                "registration": (None if not trunk.registers or self._health is None
                                 else self._health.registration(trunk.name) or "unknown"),
                "contacts": [{"uri": uri, "status": state.status, "rtt_ms": state.rtt_ms}
                             for uri, state in sorted(contacts.items())],
                "hosts": [host.uri for host in trunk.spec.hosts],
                "prefixes": list(trunk.spec.prefixes),
                "priority": trunk.spec.priority,
                "live_calls": load.live,
                "peak_live_calls": load.peak_live,
                "max_concurrent": trunk.spec.max_concurrent,
                "calls_per_second": round(len(recent) / RATE_WINDOW_SECONDS, 2),
                "max_calls_per_second": trunk.spec.calls_per_second,
                "calls": sum(load.outcomes.values()),
                "outcomes": dict(load.outcomes),
                "recent_outcomes": list(load.recent),
            })
        return shown
