"""Route each ARI channel event to the one listener registered for that channel id.

Listeners register before the originate is sent, so no early event can be missed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from app.adapters.ari.events import ChannelEvent

log = logging.getLogger(__name__)


class ChannelEventRouter:
    def __init__(self) -> None:
        self._listeners: dict[str, Callable[[ChannelEvent], None]] = {}
        self.unrouted = 0

    def register(self, channel_id: str, listener: Callable[[ChannelEvent], None]) -> None:
        self._listeners[channel_id] = listener

    def unregister(self, channel_id: str) -> None:
        self._listeners.pop(channel_id, None)

    def dispatch(self, event: ChannelEvent) -> None:
        listener = self._listeners.get(event.channel_id)
        if listener is None:
            self.unrouted += 1
            log.debug("no listener for %s on channel %s", type(event).__name__, event.channel_id)
            return
        listener(event)
