"""How the SQLite store talks to SQLite: a connection per thread, work handed over whole.

sqlite3 blocks, so each connection lives on a thread of its own (a one-worker
`concurrent.futures.ThreadPoolExecutor`) and a store call hands that thread one
function that does all of the call's statements: one thread hop per call, not one
per statement (aiosqlite's model, which cost 24 hops per answered message).

Writes go through `SqliteGroupCommit` (the queue and writer task are
`bot.store.group_commit`'s): every job queued while a transaction runs goes into the
next one, so under load many callers share one BEGIN…COMMIT (group commit; the delay
is at most one transaction's time, and there is no delay when idle). Each job runs in
a SAVEPOINT of its own: one that fails with an ordinary error (a constraint, a bug) is
rolled back alone; one that fails because the database failed (full, locked, I/O:
`is_fault`) fails the whole transaction, and every job in it raises, for its caller to
retry. A job's result is handed back only after COMMIT returned:
committed before acknowledged.

A small transaction (at most HERE_MAX_JOBS jobs) runs on the event loop's own thread
when it can begin at once: the writer's thread idle and no other connection holding
the write lock (`BEGIN IMMEDIATE` with a busy timeout of 0). Handing a call to a thread
and back costs about as much as the transaction itself (measured: an insert in WAL mode
with `synchronous = NORMAL` takes ~30 µs, no fsync; a hand-over ~90 µs each way on a
busy core), twice per answered message. Anything that would wait runs on the thread as
before: a database locked by another process (its busy timeout, up to seconds), a batch
under load (big enough to be worth a core of its own), a job that may touch many rows
(`long`: a reset, a prune, moving a channel, forgetting a user), the checkpointer's
TRUNCATE. A job never runs twice: the choice is made before BEGIN.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from bot.store.group_commit import MAX_NOW, Committed, GroupCommit, Outcome

log = logging.getLogger(__name__)

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]
IsFault = Callable[[BaseException], bool]

LATER_S = 0.05  # how long a `write_later` job may wait for a transaction to ride along with
HERE_MAX_JOBS = 32  # a bigger batch is committed on the writer's thread, never on the event loop's
BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


class SqliteThread:
    """One sqlite3 connection, used from its own thread, or from the caller's by
    `run_here` while that thread has nothing to do (a lock says who holds it)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None
        self._using = threading.Lock()  # held while a thread runs statements on the connection

    async def open(self, connect: Callable[[], sqlite3.Connection]) -> None:
        """Start the thread and connect on it (`connect` runs there); closes again on failure."""
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=self._name)
        try:
            self._connection = await self._in_thread(connect)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """`function(connection, *args)` on the connection's thread."""
        if self._connection is None:
            raise RuntimeError(f"{self._name}: the store is not open")
        return await self._in_thread(self._locked, function, self._connection, *args)

    def submit(self, function: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        """`function(connection, *args)` on the connection's thread, from any thread, without
        waiting: its future (for work started where the event loop may not run meanwhile)."""
        if self._connection is None or self._executor is None:
            raise RuntimeError(f"{self._name}: the store is not open")
        return self._executor.submit(self._locked, function, self._connection, *args)

    def submit_fetchall(
        self, sql: str, parameters: Sequence[Any] = ()
    ) -> concurrent.futures.Future[list[Any]]:
        """`execute_fetchall` without waiting, from any thread (see `submit`)."""
        return self.submit(_fetchall, sql, parameters)

    def run_here(self, function: Callable[..., T], *args: Any) -> T | None:
        """`function(connection, *args)` on the calling thread, at once; None without
        running it when the connection is in use on its own thread (or closed). For work
        that never waits long: it blocks its caller, the event loop."""
        if self._connection is None or not self._using.acquire(blocking=False):
            return None
        try:
            return function(self._connection, *args)
        finally:
            self._using.release()

    async def execute_fetchall(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
        """Every row of one statement (autocommit)."""
        return await self.run(_fetchall, sql, parameters)

    async def close(self) -> None:
        """Close the connection and end the thread; a no-op when closed."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._in_thread(connection.close)
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def _locked(self, function: Callable[..., T], *args: Any) -> T:
        """On the connection's thread: `function(*args)` holding the connection (the lock
        outlives a caller cancelled meanwhile, so `run_here` never overlaps it)."""
        with self._using:
            return function(*args)


class SqliteGroupCommit(GroupCommit[Job]):
    """Writes from every task, committed together on the writer's connection (see the
    module docstring and `bot.store.group_commit`).

    `rolled_back` is called (on whichever thread holds the connection: the writer's or
    the event loop's) whenever a transaction or a job is rolled back, so that caches of
    what it wrote can be forgotten. `began` is called (the same) at the start of every
    transaction, holding the write lock: see `SqliteStore._began`. The connection's busy
    timeout must be 0; `busy_timeout_ms` is how long a BEGIN on the writer's thread waits
    for another connection's write lock. While `wal_full()` is true (the WAL has passed
    its limit: `bot.store.sqlite_wal.WalGauge`), every transaction runs on the writer's
    thread, so that its caller waits and the event loop runs the checkpointer."""

    def __init__(
        self,
        thread: SqliteThread,
        is_fault: IsFault,
        rolled_back: Callable[[], None],
        began: Callable[[sqlite3.Connection], None] = lambda connection: None,
        busy_timeout_ms: int = 5000,
        wal_full: Callable[[], bool] = lambda: False,
    ) -> None:
        super().__init__("sqlite-group-commit")
        self._thread = thread
        self._busy_timeout_ms = busy_timeout_ms
        self._is_fault = is_fault
        self._rolled_back = rolled_back
        self._began = began
        self._wal_full = wal_full
        self._later: asyncio.TimerHandle | None = None
        self.here = 0  # transactions committed on the event loop's thread

    async def write(
        self, job: Callable[[sqlite3.Connection], T], committed: Committed | None = None, *,
        long: bool = False,
    ) -> T:
        """Run `job(connection)` in the next transaction; its result once committed.
        `committed(result)`: see `GroupCommit._enqueue`. A `long` job (one that may touch
        many rows: a reset, a prune, moving a channel) is committed on the writer's
        thread, never on the event loop's, which it would hold up meanwhile."""
        result: T = await self._enqueue(_Long(job) if long else job, committed)
        return result

    def write_later(self, job: Job, what: str, *, within: float = LATER_S, first: bool = False) -> None:
        """Queue `job` for the next transaction without waiting for it (rows that no read
        depends on at once): it rides along with the next `write`, or is written alone
        after `within` seconds, so it costs no transaction of its own while writes come
        often. A `first` job (one whose loss a crash would show: a reply's shown parts)
        is committed at once when nothing is being committed and it can begin without
        waiting (see the module docstring); else it goes to the front of the queue: it
        waits for the transaction running now (at most MAX_BATCH jobs), never for the
        writes queued behind it. A failure is logged, naming `what`."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        future.add_done_callback(lambda done: _log_failure(done, what))
        if first and not self._flushing and len(self._queue) < MAX_NOW:
            # Nothing is being committed: this one's own transaction, now, on the event
            # loop's thread (tens of µs), rather than waiting `within` for one to ride with.
            with contextlib.suppress(Exception):  # the database failed: `future` says so
                if self._commit_with_queue((job, future, None), first=True) is not None:
                    return
            if future.done():
                return
        if first:
            self._queue.appendleft((job, future, None))
        else:
            self._queue.append((job, future, None))
        if self._later is None or self._later.when() > loop.time() + within:
            if self._later is not None:
                self._later.cancel()
            self._later = loop.call_later(within, self._later_due)

    async def settled(self) -> None:
        """Return once every write queued so far (`write_later` included) has committed
        or failed."""
        if self._queue or (self._flusher is not None and not self._flusher.done()):
            await self.write(_nothing)

    async def close(self) -> None:
        """Let queued writes finish, then stop the writer."""
        if self._later is not None:  # a running flush may have taken its jobs: it must not wake a new writer
            self._later.cancel()
            self._later = None
        await super().close()

    def _commit_now(self, jobs: list[Job]) -> list[Outcome] | None:
        """On the event loop's thread, when it can begin at once (see the module docstring)."""
        if len(jobs) > HERE_MAX_JOBS or self._wal_full():
            return None
        for job in jobs:  # (a loop: a generator in `any` cost a microsecond per write)
            if isinstance(job, _Long):
                return None
        outcomes = self._thread.run_here(_transaction, jobs, self._is_fault, self._rolled_back,
                                         self._began, self._busy_timeout_ms, False)
        if outcomes is not None:
            self.here += 1
        return outcomes

    async def _commit(self, jobs: list[Job]) -> list[Outcome]:
        """On the event loop's thread when it can begin at once, else on the writer's."""
        if (outcomes := self._commit_now(jobs)) is not None:
            return outcomes
        outcomes = await self._thread.run(_transaction, jobs, self._is_fault, self._rolled_back, self._began,
                                          self._busy_timeout_ms, True)
        assert outcomes is not None  # it may wait: it begins, or raises
        return outcomes

    def _later_due(self) -> None:
        """A `write_later` job's time is up: the writer commits the queue. (A write that
        took the queue meanwhile leaves the timer be: cancelling and setting one per
        write cost more than this wake-up finding the queue empty.)"""
        self._later = None
        self._wake()


class _Long:
    """A job that may take long (see `SqliteGroupCommit.write`)."""

    __slots__ = ("job",)

    def __init__(self, job: Job) -> None:
        self.job = job

    def __call__(self, connection: sqlite3.Connection) -> Any:
        return self.job(connection)


def _nothing(connection: sqlite3.Connection) -> None:
    return None


def _log_failure(future: asyncio.Future[Any], what: str) -> None:
    if not future.cancelled() and (error := future.exception()) is not None:
        log.warning("could not store %s: %s", what, error)


def _transaction(
    connection: sqlite3.Connection, jobs: list[Job], is_fault: IsFault, rolled_back: Callable[[], None],
    began: Callable[[sqlite3.Connection], None], busy_timeout_ms: int, wait: bool,
) -> list[Outcome] | None:
    """BEGIN IMMEDIATE, `began`, each job in a savepoint, COMMIT. Each job's (ok, result
    or exception); raises when the database failed (all rolled back). Unless `wait`, None
    without running a job when another connection holds the write lock."""
    if not _begin(connection, busy_timeout_ms, wait):
        return None
    if len(jobs) == 1:  # alone in its transaction: no savepoint needed
        return [_alone(connection, jobs[0], is_fault, rolled_back, began)]
    outcomes: list[tuple[bool, Any]] = []
    try:
        began(connection)
        for job in jobs:
            connection.execute("SAVEPOINT job")
            try:
                outcomes.append((True, job(connection)))
            except Exception as exc:
                if is_fault(exc):
                    raise
                connection.execute("ROLLBACK TO job")
                rolled_back()
                outcomes.append((False, exc))
            connection.execute("RELEASE job")
        connection.execute("COMMIT")
    except BaseException:
        _roll_back(connection, rolled_back)
        raise
    return outcomes


def _begin(connection: sqlite3.Connection, busy_timeout_ms: int, wait: bool) -> bool:
    """BEGIN IMMEDIATE on a connection whose busy timeout is 0: True once begun; unless
    `wait`, False at once when another connection holds the write lock (raises for any
    other failure); when `wait`, waiting up to `busy_timeout_ms` for it."""
    if wait:
        connection.execute(f"PRAGMA busy_timeout = {busy_timeout_ms:d}")
        try:
            connection.execute("BEGIN IMMEDIATE")
        finally:
            connection.execute("PRAGMA busy_timeout = 0")
        return True
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode in BUSY_CODES:
            return False
        raise
    return True


def _alone(
    connection: sqlite3.Connection, job: Job, is_fault: IsFault, rolled_back: Callable[[], None],
    began: Callable[[sqlite3.Connection], None],
) -> tuple[bool, Any]:
    """One job in the transaction just begun; raises when the database failed."""
    try:
        began(connection)
        result = job(connection)
        connection.execute("COMMIT")
    except BaseException as exc:
        _roll_back(connection, rolled_back)
        if isinstance(exc, Exception) and not is_fault(exc):
            return (False, exc)
        raise
    return (True, result)


def _roll_back(connection: sqlite3.Connection, rolled_back: Callable[[], None]) -> None:
    rolled_back()
    if connection.in_transaction:  # SQLite may have rolled back already (full, I/O)
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")


def _fetchall(connection: sqlite3.Connection, sql: str, parameters: Sequence[Any]) -> list[Any]:
    return connection.execute(sql, parameters).fetchall()
