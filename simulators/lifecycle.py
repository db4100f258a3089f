"""Stopping the simulators' background work: the asyncio tasks that pace a
sensor, pump a pty or tick the physics, and the ``async with`` exit that
every simulator shares."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any


async def stop_tasks(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel every task (``None`` entries are skipped), then wait for each
    to end. All are cancelled before the first wait, so tasks that feed each
    other (the two pumps of a pty pair) stop together."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError):
            await task


class ClosesOnExit:
    """Mixin: leaving ``async with`` awaits :meth:`close`. Each simulator
    writes its own ``__aenter__`` (what it starts and what it hands out
    differ) and ``close``."""

    async def close(self) -> None:
        raise NotImplementedError

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
