"""Ending asyncio stream-server sessions cleanly (DTU clients, control port)."""

from __future__ import annotations

import asyncio


async def end_sessions(sessions: dict[asyncio.Task[None], asyncio.StreamWriter]) -> None:
    """End stream-server sessions by closing their sockets, so each handler
    sees end-of-stream and returns. Cancelling them instead makes Python
    3.11's streams machinery log the cancellation as an error."""
    for writer in list(sessions.values()):
        writer.close()
    tasks = list(sessions)
    if tasks:
        _, stuck = await asyncio.wait(tasks, timeout=1.0)
        for task in stuck:
            task.cancel()
