"""What operators watch: Asterisk's view over AMI beside the service's own counters."""

from __future__ import annotations

from typing import Any

from app.adapters.ami.monitor import AmiMonitor
from app.adapters.ari.routing import ChannelEventRouter
from app.media_plane.supervisor import AsteriskSupervisor
from app.services.dialer import Dialer


class Monitoring:
    def __init__(self, ami: AmiMonitor, dialer: Dialer, router: ChannelEventRouter,
                 supervisor: AsteriskSupervisor | None) -> None:
        self._supervisor = supervisor
        self._ami = ami
        self._dialer = dialer
        self._router = router

    def snapshot(self) -> dict[str, Any]:
        servers = self._dialer.status()
        for shown, server in zip(servers, self._dialer.servers, strict=True):
            shown.update(disconnects=server.events.disconnects,
                         ignored_events=server.events.ignored_events)
        return {
            "supervisor": (self._supervisor.status() if self._supervisor is not None
                           else {"managed_by_service": False}),
            "media_servers": servers,
            "ami": self._ami.snapshot(),
            "ari": {"unrouted_events": self._router.unrouted},
            "dialer": {"live_calls": self._dialer.live_calls,
                       "peak_live_calls": self._dialer.peak_concurrent},
        }
