"""Group commit, the part both stores share: writes from every task, in call order,
committed together.

Every job queued while a transaction runs goes into the next one (at most MAX_BATCH),
so under load many callers share one BEGIN…COMMIT; there is no delay when idle: a
store that can commit without waiting (`_commit_now`) commits a write at once, in its
caller, with whatever is queued (at most MAX_NOW jobs, such as rows written "later"),
when nothing is being committed and no other task wrote in the same turn of the event
loop (see `GroupCommit._alone_this_turn`). One
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
MAX_NOW = 16  # jobs queued at most for a write to commit them at once, in its caller

Outcome = tuple[bool, Any]  # (ok, the job's result or its exception)
Committed = Callable[[Any], None]  # told a job's result once it is committed (event loop's thread)
# A queued job: its future (None: its caller commits it) and who to tell once committed.
_Entry = tuple[J, "asyncio.Future[Any] | None", Committed | None]


class GroupCommit(Generic[J]):
    """The queue and the writer task; subclasses say how a batch is committed."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._queue: deque[_Entry[J]] = deque()
        self._flusher: asyncio.Task[None] | None = None
        self._wanted = asyncio.Event()
        self._closing = False
        self._flushing = False  # a batch is being committed
        self._turn_writer: asyncio.Task[Any] | None = None  # see `_alone_this_turn`
        self.transactions = 0  # how many COMMITs: under load, fewer than jobs

    async def _enqueue(self, job: J, committed: Committed | None = None) -> Any:
        """Run `job` in the next transaction; its result once committed (each store's
        `write` says the job's and the result's types). `committed(result)` is called once
        the job's transaction committed, before any caller resumes, and even when this
        caller was cancelled meanwhile: what a cache learns from a write is never lost."""
        if not self._flushing and len(self._queue) < MAX_NOW and self._alone_this_turn():
            outcomes = self._commit_with_queue((job, None, committed))  # what waits rides along
            if outcomes is not None:
                ok, value = outcomes[-1]
                if not ok:
                    raise value
                return value
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

    def _commit_with_queue(self, entry: _Entry[J], *, first: bool = False) -> list[Outcome] | None:
        """Commit `entry` with every queued job at once, in the caller (`_commit_now`): the
        outcomes, `entry`'s last (first, when `first`); None, with nothing run, when the
        store cannot begin at once. Raises when the database failed, every job's waiting
        caller told."""
        batch = [entry, *self._queue] if first else [*self._queue, entry]
        try:
            outcomes = self._commit_now([job for job, _, _ in batch])
        except Exception as exc:  # the database failed: every job of the batch fails with it
            self._queue.clear()
            _fail(batch, exc)
            raise
        if outcomes is not None:
            self._queue.clear()
            self.transactions += 1
            self._deliver(batch, outcomes)
        return outcomes

    def _alone_this_turn(self) -> bool:
        """Whether a write now has nobody to share a transaction with: no other task wrote
        at once in this turn of the event loop (when one did, more are likely coming, as
        in a burst, so this one is queued for the next transaction; the same task's next
        write cannot share one anyway). Marks this task as the turn's writer."""
        task = asyncio.current_task()
        if self._turn_writer is None:
            self._turn_writer = task
            asyncio.get_running_loop().call_soon(self._next_turn)
            return True
        return self._turn_writer is task

    def _next_turn(self) -> None:
        self._turn_writer = None

    def _commit_now(self, jobs: list[J]) -> list[Outcome] | None:
        """`_commit` without waiting for anything, when the store can (None when it cannot
        begin at once: then the jobs are queued). Raises when the database failed."""
        return None

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
        self._flushing = True
        try:
            await self._flush_queue()
        finally:
            self._flushing = False

    async def _flush_queue(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), MAX_BATCH))]
            try:
                outcomes = await self._commit([job for job, _, _ in batch])
            except Exception as exc:  # the database failed: every job of the batch fails with it
                _fail(batch, exc)
                continue
            self.transactions += 1
            self._deliver(batch, outcomes)

    @staticmethod
    def _deliver(batch: list[_Entry[J]], outcomes: list[Outcome]) -> None:
        """Tell a committed batch's `committed` callbacks, then its callers."""
        for (_, _, committed), (ok, value) in zip(batch, outcomes, strict=True):
            if ok and committed is not None:
                committed(value)
        for (_, future, _), (ok, value) in zip(batch, outcomes, strict=True):
            if future is None or future.done():  # committed in its caller, or the caller was cancelled
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)


def _fail(batch: list[_Entry[J]], error: Exception) -> None:
    """A batch's transaction failed: every caller still waiting raises `error`."""
    for _, future, _ in batch:
        if future is not None and not future.done():
            future.set_exception(error)
