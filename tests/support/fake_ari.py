"""A fake Asterisk ARI in this process, with a control surface, for dialer and call tests.

It serves what app/adapters/ari uses: POST /ari/channels (our channelId), POST
/ari/channels/{id}/play/{playbackId}, DELETE /ari/channels/{id}, GET /ari/channels,
GET /ari/playbacks/{id}, and the /ari/events websocket of one app, all behind HTTP Basic
credentials. Events have Asterisk 22's shapes as measured (ASTERISK-NOTES.md): Ringing is a
ChannelStateChange, the answer is StasisStart, a playback reports PlaybackStarted then
PlaybackFinished (done, or failed when the channel hangs up under it) and is gone from
/playbacks afterwards, and every channel ends with ChannelDestroyed carrying cause, cause_txt
and, for a far end's answer, tech_cause. Events while no websocket is connected are lost, as
with Asterisk, and a channel answered then is hung up ("Stasis app not active").

Each target (the user part of the dialled SIP URI) follows a `Behaviour`: answer after N s,
ring first, reject with a SIP code, ring until the originate timeout, or have the originate
itself fail with an HTTP status or a reset connection. The fake records when each originate
arrived, how many channels were live after every change, and every hang-up. The websocket
can be dropped on demand and refused for a while.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import soundfile
from aiohttp import WSCloseCode, web

from tests.support.ports import free_tcp_port

ASTERISK_ID = "02:fa:ce:00:00:01"
DEFAULT_PLAYBACK_SECONDS = 0.1  # media the fake cannot find on disk


@dataclass(frozen=True)
class Rejection:
    """A final error from the far end, as ChannelDestroyed reports it."""

    sip_code: int
    cause: int
    cause_txt: str


BUSY = Rejection(486, 17, "User busy")
NOT_FOUND = Rejection(404, 1, "Unallocated (unassigned) number")
CONGESTION = Rejection(503, 34, "Circuit/channel congestion")
DECLINE = Rejection(603, 21, "Call Rejected")
# What Asterisk reports when its own originate timeout ends a call that was never answered.
NO_ANSWER = Rejection(480, 19, "User alerting, no answer")


@dataclass(frozen=True)
class Behaviour:
    """What one target does when it is dialled. Times are seconds after the originate."""

    ring_after: float | None = None  # a 180: ChannelStateChange to Ringing
    answer_after: float | None = 0.05  # StasisStart; None rings until the originate timeout
    reject: Rejection | None = None  # end with this instead of answering
    reject_after: float = 0.02
    far_end_hangup_after: float | None = None  # after the answer: a BYE from the far end
    playback_seconds: float | None = None  # None: the played file's own length
    originate_status: int | None = None  # answer POST /channels with this HTTP error
    originate_reset: bool = False  # drop the connection instead of answering the originate
    first_play_lost: bool = False  # the first play never starts (its sender died first)


@dataclass(frozen=True)
class Originate:
    at: float  # time.monotonic() when the request arrived
    channel_id: str
    user: str
    endpoint: str
    timeout: int
    variables: Mapping[str, str]


@dataclass
class _Playback:
    id: str
    channel_id: str
    media: str
    state: str = "queued"
    task: asyncio.Task[None] | None = None

    def snapshot(self) -> dict[str, Any]:
        return {"id": self.id, "media_uri": self.media, "target_uri": f"channel:{self.channel_id}",
                "language": "en", "state": self.state}


@dataclass
class _Channel:
    id: str
    user: str
    app: str
    app_args: str
    caller: str
    created: str
    state: str = "Down"
    in_stasis: bool = False
    script: asyncio.Task[None] | None = None
    playbacks: list[_Playback] = field(default_factory=list)

    def snapshot(self) -> dict[str, Any]:
        return {"id": self.id, "name": f"PJSIP/fake-{self.id[-8:]}", "state": self.state,
                "caller": {"name": self.caller, "number": ""},
                "connected": {"name": self.caller, "number": ""}, "accountcode": "",
                "dialplan": {"context": "voxcast-inbound", "exten": "s", "priority": 1,
                             "app_name": "Stasis" if self.in_stasis else "AppDial2",
                             "app_data": f"{self.app},{self.app_args}"},
                "creationtime": self.created, "language": "en"}


def _timestamp() -> str:
    """Asterisk's event time format: 2026-12-03T09:10:40.948+0000."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + \
        f".{int(now * 1000) % 1000:03d}+0000"


def user_of(endpoint: str) -> str:
    """`PJSIP/voxcast-out/sip:alice@127.0.0.1:5060` -> `alice`."""
    uri = endpoint.split("/", 2)[-1]
    address = uri.split(":", 1)[1] if ":" in uri else uri
    return address.split("@", 1)[0] if "@" in address else ""


class FakeAri:
    """Start with `async with FakeAri(...) as ari:`; point the service's ARI URL at `ari.url`."""

    def __init__(self, *, user: str = "voxcast", password: str | None = None,
                 sound_root: Path | None = None) -> None:
        password = password or secrets.token_urlsafe(16)
        self._authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.user = user
        self.password = password
        self._sound_root = sound_root
        self.port = free_tcp_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.default = Behaviour()
        self.behaviours: dict[str, Behaviour] = {}
        self.channels: dict[str, _Channel] = {}
        self.playbacks: dict[str, _Playback] = {}
        self.sockets: dict[web.WebSocketResponse, asyncio.Queue[str]] = {}
        self.originates: list[Originate] = []
        self.live_changes: list[tuple[float, int]] = []  # (monotonic time, live channels)
        self.hangups: list[tuple[float, str]] = []  # DELETE requests: (time, channel id)
        self.destroyed: list[tuple[float, str, int]] = []  # (time, channel id, cause)
        self.plays: list[tuple[float, str, str]] = []  # (time, channel id, playback id)
        self.playback_lookups: list[tuple[str, bool]] = []  # GET /playbacks: (id, found)
        self.lost_events: list[str] = []  # event types sent while no websocket listened
        self.websocket_connects = 0
        self.event_filters: list[object] = []  # bodies of PUT /applications/{app}/eventFilter
        self.startup_time = time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime())
        self._refuse_events_until = 0.0
        self._closing = asyncio.Event()  # releases requests held open by a behaviour
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # --- control surface --------------------------------------------------------------------

    def behave(self, user: str, behaviour: Behaviour) -> None:
        self.behaviours[user] = behaviour

    @property
    def live(self) -> int:
        return len(self.channels)

    @property
    def max_live(self) -> int:
        return max((count for _, count in self.live_changes), default=0)

    async def drop_events(self, refuse_for: float = 0.0) -> None:
        """Close the event websocket now; refuse new ones (503) for `refuse_for` seconds."""
        self._refuse_events_until = time.monotonic() + refuse_for
        for socket in list(self.sockets):
            await socket.close(code=WSCloseCode.GOING_AWAY)

    async def stop_listening(self) -> None:
        """Refuse connections from now on (Asterisk gone): new connects fail."""
        if self._site is not None:
            await self._site.stop()
            self._site = None

    async def start_listening(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await self._site.start()

    # --- life cycle -------------------------------------------------------------------------

    async def __aenter__(self) -> FakeAri:
        app = web.Application(middlewares=[self._authenticate])
        app.router.add_post("/ari/channels", self._originate)
        app.router.add_get("/ari/channels", self._list_channels)
        app.router.add_get("/ari/channels/{channel_id}", self._get_channel)
        app.router.add_get("/ari/asterisk/info", self._info)
        app.router.add_put("/ari/applications/{app}/eventFilter", self._event_filter)
        app.router.add_delete("/ari/channels/{channel_id}", self._hangup)
        app.router.add_post("/ari/channels/{channel_id}/play/{playback_id}", self._play)
        app.router.add_get("/ari/playbacks/{playback_id}", self._get_playback)
        app.router.add_get("/ari/events", self._events)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await self.start_listening()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._closing.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for socket in list(self.sockets):
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _spawn(self, coroutine: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- HTTP -------------------------------------------------------------------------------

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != self._authorization:
            return web.json_response({"message": "Authentication required"}, status=401)
        return await handler(request)

    async def _originate(self, request: web.Request) -> web.StreamResponse:
        params = request.query
        endpoint = params.get("endpoint", "")
        channel_id = params.get("channelId", "")
        user = user_of(endpoint)
        behaviour = self.behaviours.get(user, self.default)
        body = await request.json() if request.can_read_body else {}
        self.originates.append(Originate(time.monotonic(), channel_id, user, endpoint,
                                         int(params.get("timeout", "30")),
                                         dict(body.get("variables", {}))))
        if behaviour.originate_reset:
            assert request.transport is not None
            request.transport.abort()  # the client sees the connection reset, no answer
            return web.Response(status=500)
        if behaviour.originate_status is not None:
            return web.json_response({"message": "Allocation failed"},
                                     status=behaviour.originate_status)
        if not endpoint or not params.get("app") or not channel_id:
            return web.json_response({"message": "endpoint, app and channelId needed"},
                                     status=400)
        if channel_id in self.channels:
            return web.json_response({"message": "Channel with given unique ID already exists"},
                                     status=409)
        channel = _Channel(channel_id, user, params["app"], params.get("appArgs", ""),
                           params.get("callerId", ""), _timestamp())
        self.channels[channel_id] = channel
        self._count_live()
        channel.script = self._spawn(self._run_script(channel, behaviour,
                                                      int(params.get("timeout", "30"))))
        return web.json_response(channel.snapshot())

    async def _list_channels(self, _request: web.Request) -> web.StreamResponse:
        return web.json_response([channel.snapshot() for channel in self.channels.values()])

    async def _get_channel(self, request: web.Request) -> web.StreamResponse:
        channel = self.channels.get(request.match_info["channel_id"])
        if channel is None:
            return web.json_response({"message": "Channel not found"}, status=404)
        return web.json_response(channel.snapshot())

    async def _event_filter(self, request: web.Request) -> web.StreamResponse:
        self.event_filters.append(await request.json())  # accepted; the fake sends few anyway
        return web.json_response({"name": request.match_info["app"]})

    async def _info(self, _request: web.Request) -> web.StreamResponse:
        # A fixed startup time: this fake never restarts, so the service sees no restart.
        return web.json_response({"status": {"startup_time": self.startup_time}})

    async def _hangup(self, request: web.Request) -> web.StreamResponse:
        channel = self.channels.get(request.match_info["channel_id"])
        if channel is None:
            return web.json_response({"message": "Channel not found"}, status=404)
        self.hangups.append((time.monotonic(), channel.id))
        self._emit("ChannelHangupRequest", cause=32, soft=True, channel=channel.snapshot())
        self._destroy(channel, 16, "Normal Clearing", None)
        return web.Response(status=204)

    async def _play(self, request: web.Request) -> web.StreamResponse:
        channel = self.channels.get(request.match_info["channel_id"])
        if channel is None:
            return web.json_response({"message": "Channel not found"}, status=404)
        if not channel.in_stasis:
            return web.json_response({"message": "Channel not in Stasis application"},
                                     status=409)
        playback = _Playback(request.match_info["playback_id"], channel.id,
                             request.query.get("media", ""))
        self.plays.append((time.monotonic(), channel.id, playback.id))
        behaviour = self.behaviours.get(channel.user, self.default)
        if behaviour.first_play_lost and not any(c == channel.id for _, c, _ in self.plays[:-1]):
            # As if the service died before its request reached Asterisk: no playback ever.
            await self._closing.wait()
            return web.json_response({"message": "Channel not found"}, status=404)
        self.playbacks[playback.id] = playback
        channel.playbacks.append(playback)
        seconds = behaviour.playback_seconds
        if seconds is None:
            seconds = self._media_seconds(playback.media)
        playback.task = self._spawn(self._run_playback(channel, playback, seconds))
        return web.json_response(playback.snapshot(), status=201)

    async def _get_playback(self, request: web.Request) -> web.StreamResponse:
        playback = self.playbacks.get(request.match_info["playback_id"])
        self.playback_lookups.append((request.match_info["playback_id"], playback is not None))
        if playback is None:
            return web.json_response({"message": "Playback not found"}, status=404)
        return web.json_response(playback.snapshot())

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if time.monotonic() < self._refuse_events_until:
            return web.json_response({"message": "refused by the test"}, status=503)
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        outbox: asyncio.Queue[str] = asyncio.Queue()
        writer = self._spawn(self._write(socket, outbox))
        self.sockets[socket] = outbox
        self.websocket_connects += 1
        try:
            async for _message in socket:
                pass  # ARI clients send nothing we need
        finally:
            del self.sockets[socket]
            writer.cancel()
        return socket

    @staticmethod
    async def _write(socket: web.WebSocketResponse, outbox: asyncio.Queue[str]) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while True:
                await socket.send_str(await outbox.get())

    # --- what Asterisk would do -------------------------------------------------------------

    def _media_seconds(self, media: str) -> float:
        path = media.removeprefix("sound:")
        if self._sound_root is None or not path.startswith("/"):
            return DEFAULT_PLAYBACK_SECONDS
        try:
            return float(soundfile.info(self._sound_root / (path.lstrip("/") + ".wav")).duration)
        except (OSError, RuntimeError):
            return DEFAULT_PLAYBACK_SECONDS

    def _count_live(self) -> None:
        self.live_changes.append((time.monotonic(), len(self.channels)))

    def _emit(self, kind: str, **payload: Any) -> None:
        """Queue an event for every connected websocket, in order; lost when none is."""
        event = {"type": kind, "timestamp": _timestamp(), **payload,
                 "asterisk_id": ASTERISK_ID, "application": "voxcast"}
        if not self.sockets:
            self.lost_events.append(kind)
            return
        text = json.dumps(event)
        for outbox in self.sockets.values():
            outbox.put_nowait(text)

    async def _run_script(self, channel: _Channel, behaviour: Behaviour,
                          ring_seconds: int) -> None:
        started = time.monotonic()

        async def until(offset: float) -> None:
            await asyncio.sleep(max(0.0, started + offset - time.monotonic()))

        if behaviour.ring_after is not None:
            answer_or_end = behaviour.answer_after if behaviour.reject is None \
                else behaviour.reject_after
            if answer_or_end is None or behaviour.ring_after < answer_or_end:
                await until(behaviour.ring_after)
                channel.state = "Ringing"
                self._emit("ChannelStateChange", channel=channel.snapshot())
        if behaviour.reject is not None:
            await until(behaviour.reject_after)
            self._destroy(channel, behaviour.reject.cause, behaviour.reject.cause_txt,
                          behaviour.reject.sip_code)
            return
        if behaviour.answer_after is None or behaviour.answer_after >= ring_seconds:
            await until(ring_seconds)
            self._destroy(channel, NO_ANSWER.cause, NO_ANSWER.cause_txt, NO_ANSWER.sip_code)
            return
        await until(behaviour.answer_after)
        channel.state = "Up"
        self._emit("ChannelStateChange", channel=channel.snapshot())
        if not self.sockets:  # "Stasis app 'voxcast' not active": hung up at once
            self._destroy(channel, 16, "Normal Clearing", None)
            return
        channel.in_stasis = True
        self._emit("StasisStart", args=[channel.app_args], channel=channel.snapshot())
        if behaviour.far_end_hangup_after is not None:
            await until(behaviour.answer_after + behaviour.far_end_hangup_after)
            self._destroy(channel, 0, "Unknown", None)

    async def _run_playback(self, channel: _Channel, playback: _Playback,
                            seconds: float) -> None:
        playback.state = "playing"
        self._emit("PlaybackStarted", playback=playback.snapshot())
        await asyncio.sleep(seconds)
        self._end_playback(channel, playback, "done")

    def _end_playback(self, channel: _Channel, playback: _Playback, state: str) -> None:
        if self.playbacks.pop(playback.id, None) is None:
            return
        with contextlib.suppress(ValueError):
            channel.playbacks.remove(playback)
        playback.state = state
        self._emit("PlaybackFinished", playback=playback.snapshot())

    def _destroy(self, channel: _Channel, cause: int, cause_txt: str,
                 tech_cause: int | None) -> None:
        if self.channels.pop(channel.id, None) is None:
            return
        if channel.script is not None and channel.script is not asyncio.current_task():
            channel.script.cancel()
        for playback in list(channel.playbacks):
            if playback.task is not None and playback.task is not asyncio.current_task():
                playback.task.cancel()
            self._end_playback(channel, playback, "failed")
        self._count_live()
        self.destroyed.append((time.monotonic(), channel.id, cause))
        if channel.in_stasis:
            self._emit("StasisEnd", channel=channel.snapshot())
        payload: dict[str, Any] = {"cause": cause, "cause_txt": cause_txt}
        if tech_cause is not None:
            payload["tech_cause"] = tech_cause
        self._emit("ChannelDestroyed", **payload, channel=channel.snapshot())
