"""The run's process bookkeeping finds what a test left running, by pid or by marker."""

from __future__ import annotations

import asyncio
import os
import uuid

from tests.support import processes


async def _sleeper(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec("sleep", "30", env=env)


async def test_a_child_carrying_the_runs_marker_is_found_until_stopped() -> None:
    marker = f"/tmp/voxcast-marker-{uuid.uuid4().hex}/"
    processes.add_marker(marker)
    child = await _sleeper({**os.environ, "VOXCAST_RUNTIME_DIR": marker + "runtime"})
    try:
        assert child.pid in {left.pid for left in processes.leftovers()}
    finally:
        assert await processes.stop_process(child) != 0
    assert child.pid not in {left.pid for left in processes.leftovers()}


async def test_a_registered_child_is_found_and_a_dead_one_is_not() -> None:
    child = await _sleeper(dict(os.environ))
    processes.register(child.pid, "sleep (a test's child)")
    try:
        found = {left.pid: left.what for left in processes.leftovers()}
        assert found.get(child.pid) == "sleep (a test's child)"
        child.kill()
        await asyncio.sleep(0.1)  # killed but not reaped yet: a zombie is not running
        assert child.pid not in {left.pid for left in processes.leftovers()}
    finally:
        await processes.kill_process(child)
