"""Several nodes on one database, SQLite included: every queued call is claimed exactly once."""

import asyncio
import json
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from app.adapters.db.store import Store
from app.domain.broadcasts import NewBroadcast, NewCall

REPOSITORY = Path(__file__).resolve().parents[2]
CALLS = 300


async def _queue_calls(store: Store, count: int) -> tuple[str, list[str]]:
    """A broadcast ready to dial: (its id, its calls' ids)."""
    new = NewBroadcast(
        id=str(uuid.uuid4()), report_id=str(uuid.uuid4()), tenant="t", caller="me",
        playlist=[{"pause": 1}], created_at=datetime.now(UTC),
        calls=[NewCall(str(uuid.uuid4()), f"sip:{i}@127.0.0.1") for i in range(count)])
    await store.intake.add_broadcast(new)
    await store.media.set_media_ready(new.id, ["sound:/x"])
    return new.id, [call.id for call in new.calls]


async def _drain(store: Store, node: str) -> list[str]:
    """Claim small batches until the queue is empty; the ids this node got."""
    claimed: list[str] = []
    while batch := await store.queue.claim_calls(node, 7):
        claimed.extend(call.call_id for call in batch)
    return claimed


async def test_two_nodes_on_one_database_claim_every_call_once(database_url):
    nodes = [await Store.open(database_url) for _ in range(2)]  # two engines, two pools
    try:
        broadcast_id, queued = await _queue_calls(nodes[0], CALLS)
        names = [f"node-{n}-{worker}" for n in range(2) for worker in range(4)]
        batches = await asyncio.gather(*(_drain(nodes[int(name.split("-")[1])], name)
                                         for name in names))
        claimed = [call_id for batch in batches for call_id in batch]
        assert sorted(claimed) == sorted(queued)  # each once: no repeats, none missing
        got = {call_id: name for name, batch in zip(names, batches, strict=True)
               for call_id in batch}
        records = await nodes[1].reports.records(broadcast_id)
        assert {record.id: record.claimed_by for record in records} == got
        assert Counter(record.state for record in records) == {"dialing": CALLS}
    finally:
        for node in nodes:
            await node.close()


# A node in its own process: waits for "go" on stdin, claims until the queue is empty,
# prints the ids it claimed as one JSON line.
_NODE = """
import asyncio, json, sys
from app.adapters.db.store import Store

async def main(url, node):
    store = await Store.open(url)
    try:
        print("ready", flush=True)
        sys.stdin.readline()
        claimed = []
        while batch := await store.queue.claim_calls(node, 5):
            claimed.extend(call.call_id for call in batch)
        print(json.dumps(claimed), flush=True)
    finally:
        await store.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_two_node_processes_on_one_sqlite_file_claim_every_call_once(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    store = await Store.open(url)
    try:
        _broadcast_id, queued = await _queue_calls(store, CALLS)
    finally:
        await store.close()
    processes = [await asyncio.create_subprocess_exec(
        sys.executable, "-c", _NODE, url, f"node-{n}", cwd=REPOSITORY,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE) for n in range(2)]
    try:
        for process in processes:
            ready = await asyncio.wait_for(process.stdout.readline(), 30)
            assert ready == b"ready\n"
        for process in processes:  # both at once, so their claims interleave
            process.stdin.write(b"go\n")
            await process.stdin.drain()
        outputs = [await asyncio.wait_for(process.stdout.readline(), 60)
                   for process in processes]
        assert [await asyncio.wait_for(process.wait(), 30) for process in processes] == [0, 0]
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
    claimed = [json.loads(output) for output in outputs]
    assert all(claimed), "both nodes should have claimed some calls"
    assert sorted(claimed[0] + claimed[1]) == sorted(queued)
