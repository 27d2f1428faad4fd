"""Read-only AMI monitoring: live channels and hang-ups by SIP code and Q.850 cause.

panoramisk does the AMI protocol and reconnects. Two of its habits are wrapped here: it
reconnects even after we close it (so closing marks it stopped), and it fires coroutine
callbacks as tasks nobody awaits (so only plain callbacks are registered, which cannot lose an
error). The only actions sent besides its own login and ping are read-only queries (`query`),
so its resending of actions after a reconnect cannot repeat anything that matters.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from panoramisk import Manager

log = logging.getLogger(__name__)
_PROTOCOL_LOG = logging.getLogger(f"{__name__}.panoramisk")
_PROTOCOL_LOG.setLevel(logging.WARNING)
logging.getLogger("panoramisk").setLevel(logging.WARNING)


class _StoppableManager(Manager):  # type: ignore[misc]
    stopped = False

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        if self.stopped:
            return None
        return super().connect(*args, **kwargs)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.stopped:
            super().connection_lost(exc)


class AmiMonitor:
    def __init__(self, *, host: str, port: int, user: str, password: str) -> None:
        # Only the event classes used here: AMI otherwise streams every event Asterisk has.
        self._config = {"host": host, "port": port, "username": user, "secret": password,
                        "ping_delay": 10, "reconnect_timeout": 2, "events": "call,system"}
        self._manager: _StoppableManager | None = None
        self.live_channels = 0
        self.hangups = 0
        self.by_sip_code: Counter[str] = Counter()
        self.by_q850: Counter[str] = Counter()
        self._listeners: list[tuple[str, Callable[[dict[str, str]], None]]] = []
        self._login_listeners: list[Callable[[], None]] = []

    def listen(self, event: str, callback: Callable[[dict[str, str]], None]) -> None:
        """Call `callback` (plain, not a coroutine) with every `event`; before `start`."""
        self._listeners.append((event, callback))

    def on_login(self, callback: Callable[[], None]) -> None:
        """Call `callback` after every (re)login: Asterisk may have restarted meanwhile."""
        self._login_listeners.append(callback)

    async def query(self, action: dict[str, str]) -> list[dict[str, str]]:
        """A read-only list action (PJSIPShow...): its events, as plain dicts."""
        manager = self._manager
        if manager is None or not manager.authenticated:
            raise ConnectionError("AMI is not connected")
        answer = await manager.send_action(action)
        return [dict(message) for message in (answer if isinstance(answer, list) else [answer])]

    @property
    def connected(self) -> bool:
        manager = self._manager
        return bool(manager is not None and manager.authenticated)

    def start(self) -> None:
        manager = _StoppableManager(loop=asyncio.get_running_loop(), **self._config)
        # Its INFO lines may print a queued action whole (the Login, secret included).
        manager.log = _PROTOCOL_LOG
        manager.register_event("Newchannel", self._on_new_channel)
        manager.register_event("Hangup", self._on_hangup)
        manager.register_event("FullyBooted", self._on_booted)
        for event, callback in self._listeners:
            manager.register_event(event, _plain(callback))
        manager.on_login = self._logged_in
        manager.connect()
        self._manager = manager

    def close(self) -> None:
        if self._manager is not None:
            self._manager.stopped = True
            self._manager.close()

    def snapshot(self) -> dict[str, Any]:
        return {"connected": self.connected, "live_channels": self.live_channels,
                "hangups": self.hangups, "by_sip_code": dict(self.by_sip_code),
                "by_q850_cause": dict(self.by_q850)}

    def _logged_in(self, _manager: Manager) -> None:
        for callback in self._login_listeners:
            callback()

    def _on_booted(self, _manager: Manager, _event: Any) -> None:
        self.live_channels = 0  # a fresh Asterisk has no channels from before

    def _on_new_channel(self, _manager: Manager, _event: Any) -> None:
        self.live_channels += 1

    def _on_hangup(self, _manager: Manager, event: Any) -> None:
        self.live_channels = max(0, self.live_channels - 1)
        self.hangups += 1
        self.by_sip_code[str(event.get("TechCause") or "none")] += 1
        self.by_q850[str(event.get("Cause") or "0")] += 1


def _plain(callback: Callable[[dict[str, str]], None]) -> Callable[[Manager, Any], None]:
    def handle(_manager: Manager, event: Any) -> None:
        callback(dict(event))

    return handle
