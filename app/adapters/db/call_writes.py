"""Call writes: each call's setup, progress and final record, group-committed.

One writer task takes every change queued since its last commit and writes them all in one
shared transaction, one executemany per kind. A commit has a fixed cost (about 1 ms of CPU on
SQLite through SQLAlchemy and aiosqlite, measured) against about 0.04 ms a change, so the writer
lets a batch gather for `window` seconds (25 ms) before it commits: at 100 calls/s that is the
difference between most of a core and a few percent of one. Every change returns a future that
is done once it is durable, so a caller awaits only what must be durable before it goes on (the
final record; the setup time before the originate where no channel log can settle a crashed
call); ring and answer progress are not awaited, so a call's audio never waits for it.

A call's changes keep their order: a batch applies setups, then progress, then finals, and a
progress or final never touches a call that has already ended.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import bindparam, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.db.tables import CallRow
from app.domain.broadcasts import CallFinal

log = logging.getLogger(__name__)

# Between attempts at a failing batch (a locked or briefly unreachable database); then the
# batch fails loudly: its futures raise and it is logged with every call it held.
RETRY_DELAYS = (0.05, 0.25, 1.0, 2.5, 5.0)
CLOSE_TIMEOUT = sum(RETRY_DELAYS) + 10.0
BATCH_WINDOW_SECONDS = 0.025
MAX_BATCH = 1000  # changes: a full batch commits at once

_SETUP = (update(CallRow).where(CallRow.id == bindparam("call_id"))
          .values(setup_time=bindparam("at", type_=CallRow.setup_time.type),
                  media_server=bindparam("server", type_=CallRow.media_server.type),
                  trunk=bindparam("trunk", type_=CallRow.trunk.type)))

_PROGRESS = (update(CallRow).where(CallRow.id == bindparam("call_id"), CallRow.state != "ended")
             .values(state=bindparam("new_state", type_=CallRow.state.type),
                     ring_time=bindparam("new_ring_time", type_=CallRow.ring_time.type),
                     connect_time=bindparam("new_connect_time",
                                            type_=CallRow.connect_time.type)))

_FINAL_COLUMNS = ("result", "disconnect_time", "ring_time", "connect_time", "sip_code",
                  "sip_text", "sip_code_source", "q850_cause", "q850_text", "hangup_by",
                  "playback", "trunk", "failed_over_from")
_FINAL = (update(CallRow).where(CallRow.id == bindparam("call_id"), CallRow.state != "ended")
          .values(state="ended", **{
              name: bindparam(f"new_{name}", type_=CallRow.__table__.c[name].type)
              for name in _FINAL_COLUMNS}))

# The next attempt copies the ended one; it runs before _FINAL, so the same `state` check
# makes it happen only for the final that actually ends the call.
_RETRY = insert(CallRow).from_select(
    ["id", "broadcast_id", "position", "attempt", "not_before", "target", "variables",
     "sounds", "speech", "state", "request_time", "requested_trunk"],
    select(bindparam("retry_id", type_=CallRow.id.type), CallRow.broadcast_id, CallRow.position,
           CallRow.attempt + 1, bindparam("not_before", type_=CallRow.not_before.type),
           CallRow.target, CallRow.variables, CallRow.sounds, CallRow.speech,
           literal("queued", CallRow.state.type), CallRow.request_time,
           CallRow.requested_trunk)
    .where(CallRow.id == bindparam("call_id"), CallRow.state != "ended"))


class Kind(Enum):  # in the order a batch applies them
    SETUP = 1
    PROGRESS = 2
    FINAL = 3


@dataclass(slots=True)
class _Change:
    kind: Kind
    call_id: str
    params: dict[str, Any]
    durable: asyncio.Future[None]


class CallWriterClosed(RuntimeError):
    """A call change arrived after the writer stopped."""


class CallWrites:
    def __init__(self, writer: AsyncEngine, window: float = BATCH_WINDOW_SECONDS) -> None:
        self._engine = writer
        self._window = window
        self._queued: list[_Change] = []
        self._committing: list[_Change] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="call-writes")
        self._task.add_done_callback(self._stopped)

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is None:
            return
        done, _ = await asyncio.wait({self._task}, timeout=CLOSE_TIMEOUT)
        if not done:
            self._task.cancel()
            await asyncio.wait({self._task})

    def mark_setup(self, call_id: str, at: datetime, media_server: str | None = None,
                   trunk: str | None = None) -> asyncio.Future[None]:
        """The originate is about to be sent, through `media_server` (and `trunk`): recovery
        must know it may have been, where to look for it, and whose limit it counts in."""
        return self._queue(Kind.SETUP, call_id, {"at": at, "server": media_server,
                                                 "trunk": trunk})

    def save_progress(self, call_id: str, *, state: str, ring_time: datetime | None,
                      connect_time: datetime | None) -> asyncio.Future[None]:
        return self._queue(Kind.PROGRESS, call_id, {
            "new_state": state, "new_ring_time": ring_time, "new_connect_time": connect_time})

    def save_final(self, call_id: str, final: CallFinal,
                   retry_at: datetime | None = None) -> asyncio.Future[None]:
        """The final record; with `retry_at`, the next attempt is queued in the same commit."""
        params = {f"new_{name}": getattr(final, name) for name in _FINAL_COLUMNS}
        if retry_at is not None:
            params.update(retry_id=str(uuid.uuid4()), not_before=retry_at)
        return self._queue(Kind.FINAL, call_id, params)

    def _queue(self, kind: Kind, call_id: str, params: dict[str, Any]) -> asyncio.Future[None]:
        if self._closing or self._task is None or self._task.done():
            raise CallWriterClosed(f"call {call_id}: the call writer is not running")
        durable = asyncio.get_running_loop().create_future()
        self._queued.append(_Change(kind, call_id, {"call_id": call_id, **params}, durable))
        self._wake.set()
        return durable

    async def _run(self) -> None:
        while self._queued or not self._closing:
            if not self._queued:
                self._wake.clear()
                await self._wake.wait()
                continue
            if not self._closing and len(self._queued) < MAX_BATCH:
                await asyncio.sleep(self._window)  # let more calls share this commit
            self._committing, self._queued = self._queued, []
            await self._commit_or_fail(self._committing)
            self._committing = []

    async def _commit_or_fail(self, batch: list[_Change]) -> None:
        for delay in (*RETRY_DELAYS, None):
            try:
                await self._commit(batch)
            except Exception as error:
                if delay is None:
                    log.error("call writes failed for good; %d changes of calls %s are not "
                              "stored (those calls stay in flight for recovery)", len(batch),
                              sorted({change.call_id for change in batch}), exc_info=True)
                    _fail(batch, error)
                    return
                log.warning("call writes failed (%s); trying again in %.2f s", error, delay)
                await asyncio.sleep(delay)
            else:
                for change in batch:
                    if not change.durable.done():
                        change.durable.set_result(None)
                return

    async def _commit(self, batch: list[_Change]) -> None:
        setups = [change.params for change in batch if change.kind is Kind.SETUP]
        finals: dict[str, dict[str, Any]] = {}
        for change in batch:  # a second final for a call changes nothing: keep the first
            if change.kind is Kind.FINAL:
                finals.setdefault(change.call_id, change.params)
        progress = {change.call_id: change.params for change in batch
                    if change.kind is Kind.PROGRESS and change.call_id not in finals}
        retries = [params for params in finals.values() if "retry_id" in params]
        async with self._engine.begin() as connection:
            if setups:
                await connection.execute(_SETUP, setups)
            if progress:
                await connection.execute(_PROGRESS, list(progress.values()))
            if retries:
                await connection.execute(_RETRY, retries)
            if finals:
                await connection.execute(_FINAL, list(finals.values()))

    def _stopped(self, task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            log.critical("the call writer crashed", exc_info=error)
        left = [change for change in (*self._committing, *self._queued)
                if not change.durable.done()]
        self._committing, self._queued = [], []
        if left:
            log.error("the call writer stopped with %d changes not known to be stored",
                      len(left))
            _fail(left, error or CallWriterClosed("the call writer stopped"))


def _fail(changes: list[_Change], error: BaseException) -> None:
    for change in changes:
        if not change.durable.done():
            change.durable.set_exception(error)
            change.durable.exception()  # logged here; nobody need await progress changes
