"""What operators watch: Asterisk's view over AMI beside the service's own counters."""

from __future__ import annotations

from typing import Any

from app.adapters.ami.monitor import AmiMonitor
from app.adapters.ari.events import AriEventStream
from app.adapters.ari.routing import ChannelEventRouter
from app.media_plane.supervisor import AsteriskSupervisor
from app.services.dialer import Dialer


class Monitoring:
    def __init__(self, ami: AmiMonitor, dialer: Dialer, events: AriEventStream,
                 router: ChannelEventRouter, media_server: AsteriskSupervisor | None) -> None:
        self._media_server = media_server
        self._ami = ami
        self._dialer = dialer
        self._events = events
        self._router = router

    def snapshot(self) -> dict[str, Any]:
        return {
            "media_server": (self._media_server.status() if self._media_server is not None
                             else {"managed_by_service": False}),
            "ami": self._ami.snapshot(),
            "ari": {"connected": self._events.connected.is_set(),
                    "disconnects": self._events.disconnects,
                    "ignored_events": self._events.ignored_events,
                    "unrouted_events": self._router.unrouted},
            "dialer": {"live_calls": self._dialer.live_calls,
                       "peak_live_calls": self._dialer.peak_concurrent},
        }
