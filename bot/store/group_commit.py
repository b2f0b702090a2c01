"""Group commit, the part both stores share: writes from every task, in call order,
committed together.

Every job queued while a transaction runs goes into the next one (at most MAX_BATCH),
so under load many callers share one BEGIN…COMMIT; there is no delay when idle. One
long-lived writer task takes the queue in order. How a batch becomes a transaction is
the store's (`_commit`): each job's outcome, or an exception when the database failed,
which every job of the batch then raises, for its caller to retry. A job's result is
handed back only after COMMIT returned: committed before acknowledged.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

J = TypeVar("J")  # a job, as the store runs it

MAX_BATCH = 256  # jobs in one transaction at most

Outcome = tuple[bool, Any]  # (ok, the job's result or its exception)
Committed = Callable[[Any], None]  # told a job's result once it is committed (event loop's thread)


class GroupCommit(Generic[J]):
    """The queue and the writer task; subclasses say how a batch is committed."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._queue: deque[tuple[J, asyncio.Future[Any], Committed | None]] = deque()
        self._flusher: asyncio.Task[None] | None = None
        self._wanted = asyncio.Event()
        self._closing = False
        self.transactions = 0  # how many COMMITs: under load, fewer than jobs

    async def _enqueue(self, job: J, committed: Committed | None = None) -> Any:
        """Run `job` in the next transaction; its result once committed (each store's
        `write` says the job's and the result's types). `committed(result)` is called once
        the job's transaction committed, before any caller resumes, and even when this
        caller was cancelled meanwhile: what a cache learns from a write is never lost."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((job, future, committed))
        self._wake()
        return await future

    async def close(self) -> None:
        """Let queued writes finish, then stop the writer."""
        if self._queue:
            self._wake()
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            self._closing = True
            self._wanted.set()
            await asyncio.gather(flusher, return_exceptions=True)
            self._closing = False

    async def _commit(self, jobs: list[J]) -> list[Outcome]:
        """Run `jobs` in one transaction: each one's outcome; raises when the database failed."""
        raise NotImplementedError

    def _wake(self) -> None:
        if self._flusher is None or self._flusher.done():  # one long-lived writer task
            self._flusher = asyncio.create_task(self._flush_forever(), name=self._name)
        self._wanted.set()

    async def _flush_forever(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            await self._flush()
            if self._closing and not self._queue:
                return

    async def _flush(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), MAX_BATCH))]
            try:
                outcomes = await self._commit([job for job, _, _ in batch])
            except Exception as exc:  # the database failed: every job of the batch fails with it
                for _, future, _ in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.transactions += 1
            for (_, _, committed), (ok, value) in zip(batch, outcomes, strict=True):
                if ok and committed is not None:
                    committed(value)
            for (_, future, _), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():  # its caller was cancelled meanwhile; the write stands
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
