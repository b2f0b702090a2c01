"""One owner for background tasks: every task is kept until it ends and cancelled on close."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# A cancellation can be lost: Python 3.11's `asyncio.wait_for` drops one that arrives as the
# awaited thing completes (gh-86296, fixed in 3.12), and discord.py's gateway loop awaits through
# it. A task still running this long after a cancel is cancelled again.
RECANCEL_S = 1.0


class TaskOwner:
    """Spawns named tasks, keeps a reference to each until it ends, cancels the rest on `close`.

    Like python-telegram-bot's `Application.create_task`: no fire-and-forget
    `create_task` anywhere, so shutdown can bound and account for everything."""

    def __init__(self, name: str = "hearth") -> None:
        self._name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """Run `coro` in a task this owner keeps; raises RuntimeError once closed."""
        if self._closed:
            coro.close()
            raise RuntimeError(f"{self._name}: closed, cannot start {name}")
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._forget)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    async def wait(self, within: float) -> bool:
        """Wait up to `within` seconds for every task to end; True when none is left."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=within)
        return not self._tasks

    async def close(self) -> None:
        """Cancel every task still running and wait for them to end, cancelling again every
        RECANCEL_S seconds a task that let a cancellation go by; idempotent."""
        self._closed = True
        pending = set(self._tasks)
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=RECANCEL_S)
            if pending:
                log.warning("%s: %s still running after a cancel, cancelling again", self._name,
                            ", ".join(sorted(t.get_name() for t in pending)))

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("task %s failed: %r", task.get_name(), error, exc_info=error)
