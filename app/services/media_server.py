"""One media server (an Asterisk) the dialer places calls through.

It bundles what the service holds for that Asterisk: the ARI client, the event stream for this
node's Stasis application, Asterisk's channel event log (to settle crashed calls), its capacity,
what the service last knew of it (its start time, when its events were lost), and the sounds it
can play: this node's media library writes into one folder, and a server with a folder of its
own gets a copy of each file (a hard link where it can) before its first call plays it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from datetime import datetime
from pathlib import Path

import soundfile

from app.adapters.ari.client import AriClient, AriCredentials
from app.adapters.ari.events import AriEventStream
from app.adapters.ari.routing import ChannelEventRouter
from app.adapters.cel.channel_log import ChannelEventLog
from app.media_plane.layout import AsteriskLayout
from app.media_plane.server_list import MediaServerConfig

log = logging.getLogger(__name__)

SOUND_PREFIX = "sound:"


class MediaServer:
    def __init__(self, config: MediaServerConfig, *, ari_app: str, router: ChannelEventRouter,
                 pool_size: int, library: AsteriskLayout) -> None:
        self.name = config.name
        self.capacity = config.capacity
        credentials = AriCredentials(config.ari_user, config.ari_password.value)
        self.ari = AriClient(config.ari_url, credentials, pool_size=pool_size)
        self.events = AriEventStream(config.ari_url, ari_app, credentials, router.dispatch)
        self.history = ChannelEventLog(
            config.layout.channel_event_log if config.layout is not None else None)
        self.started: str | None = None  # Asterisk's startup time when last seen
        self.lost_at: datetime | None = None  # when its event stream last dropped
        # This node's media library folder, and this server's view of its own sounds folder.
        self._library_dir = library.sound_dir
        self._library_prefix = f"{SOUND_PREFIX}{library.inside(library.sound_dir)}/"
        own = config.layout if config.layout is not None else library
        self._own_dir = own.sound_dir
        self._own_prefix = f"{SOUND_PREFIX}{own.inside(own.sound_dir)}/"
        self._present: set[str] = set()  # sound files known to be in its folder

    @property
    def connected(self) -> bool:
        return self.events.connected.is_set()

    async def open(self) -> None:
        await self.ari.open()
        self._own_dir.mkdir(parents=True, exist_ok=True)

    async def close(self) -> None:
        await self.ari.close()

    async def playable(self, sounds: tuple[str, ...]) -> tuple[str, ...]:
        """The media URIs this server plays for `sounds` (the library's), its files in place."""
        if self._own_prefix == self._library_prefix:
            return sounds
        mapped = []
        for sound in sounds:
            if not sound.startswith(self._library_prefix):
                mapped.append(sound)  # not one of the library's files: as it is
                continue
            name = sound.removeprefix(self._library_prefix)
            if name not in self._present:
                await asyncio.to_thread(self._place, name)
                self._present.add(name)
            mapped.append(self._own_prefix + name)
        return tuple(mapped)

    async def sound_seconds(self, sound: str) -> float | None:
        """How long one of the library's sounds plays, from its file; None when unknown."""
        if not sound.startswith(self._library_prefix):
            return None
        path = self._library_dir / f"{sound.removeprefix(self._library_prefix)}.wav"
        try:
            return await asyncio.to_thread(lambda: float(soundfile.info(str(path)).duration))
        except (OSError, RuntimeError):
            return None

    def _place(self, name: str) -> None:
        source = self._library_dir / f"{name}.wav"
        target = self._own_dir / f"{name}.wav"
        if target.exists():
            return
        temporary = self._own_dir / f".{name}.wav.{os.getpid()}.tmp"  # never a playable name
        try:
            try:
                os.link(source, temporary)
            except OSError:  # another filesystem: copy instead
                shutil.copyfile(source, temporary)
            temporary.replace(target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                Path(temporary).unlink()
