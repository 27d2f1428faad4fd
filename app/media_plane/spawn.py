"""Start a media-plane program (Asterisk, SIPp) in its own session, its output in a file."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import IO


async def spawn_in_own_session(command: Sequence[str],
                               console: IO[bytes]) -> asyncio.subprocess.Process:
    """Spawn `command` with stdout and stderr in `console`, which is closed here.

    Its own session: a Ctrl-C meant for the service must not reach it; the owner stops it in
    order, after the service has drained its calls.
    """
    try:
        return await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=console,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    finally:
        console.close()  # the child holds its own descriptor
