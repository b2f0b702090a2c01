"""Group commit for the PostgreSQL store: ordered writes from every task, committed together.

Messages must be stored in the order their tasks called (ids follow it, as in
`SqliteStore`), which one lock around each write kept on a pool by letting one
write at a time reach the server: 100 channels writing at once went no faster
than one (1,077 against 1,185 messages a second here). Instead, the jobs queued
while a transaction runs go into the next one, in call order, on one connection:
order is kept and many callers share one BEGIN…COMMIT (and its flush to disk).

The queue and its writer task are `bot.store.group_commit`'s, shared with SQLite; as
there, a job that fails with an ordinary
error (a constraint, a bug) fails alone: the batch is rolled back and its jobs are
run again one transaction each; one that fails because the database failed
(`is_fault`) fails the whole transaction, and every job in it raises, for its
caller to retry.
A job's result is handed back only after COMMIT returned: committed before
acknowledged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from bot.store.group_commit import GroupCommit, Outcome

T = TypeVar("T")
Job = Callable[[asyncpg.Connection], Awaitable[Any]]
IsFault = Callable[[BaseException], bool]


class PgGroupCommit(GroupCommit[Job]):
    """Ordered writes on a pool (see the module docstring and `bot.store.group_commit`).
    `rolled_back` is called whenever a transaction or a job is rolled back, so that caches
    of what it wrote can be forgotten."""

    def __init__(self, pool: Callable[[], asyncpg.Pool], is_fault: IsFault,
                 rolled_back: Callable[[], None]) -> None:
        super().__init__("postgres-group-commit")
        self._pool = pool
        self._is_fault = is_fault
        self._rolled_back = rolled_back

    async def write(self, job: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run `job(connection)` in the next transaction; its result once committed."""
        result: T = await self._enqueue(job)
        return result

    async def _commit(self, jobs: list[Job]) -> list[Outcome]:
        """BEGIN, each job, COMMIT: each job's (ok, result or exception); raises when the
        database failed (all rolled back). A job that fails with an ordinary error rolls
        the batch back, and each job is then run alone (rare: a savepoint per job, the
        other way to part them, tripled the round trips of every batch)."""
        try:
            async with self._pool().acquire() as db, db.transaction():
                return [(True, await job(db)) for job in jobs]
        except Exception as exc:
            self._rolled_back()
            if self._is_fault(exc):
                raise
            if len(jobs) == 1:
                return [(False, exc)]
        return [await self._alone(job) for job in jobs]

    async def _alone(self, job: Job) -> Outcome:
        """One job, one transaction; raises when the database failed."""
        try:
            async with self._pool().acquire() as db, db.transaction():
                return (True, await job(db))
        except Exception as exc:
            self._rolled_back()
            if self._is_fault(exc):
                raise
            return (False, exc)
