"""Where the SQLite store's writes run: a small transaction that can begin at once on the
event loop's thread, anything that would wait on the writer's thread, no job twice."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from pathlib import Path

import pytest

from bot.messages import ConversationKey
from bot.store import SqliteStore
from bot.store.sqlite_threads import HERE_MAX_JOBS, SqliteGroupCommit, SqliteThread
from bot.store.sqlite_wal import wal_path, wal_size

pytestmark = pytest.mark.asyncio

BUSY_TIMEOUT_MS = 5000
HELD_S = 0.3  # how long another connection or the writer's thread holds on


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL").fetchall()
    db.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)")
    db.execute("PRAGMA busy_timeout = 0")  # as the store leaves its writer's
    return db


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[tuple[SqliteThread, SqliteGroupCommit]]:
    thread = SqliteThread("test-writer")
    await thread.open(lambda: connect(tmp_path / "t.db"))
    commit = SqliteGroupCommit(thread, lambda exc: isinstance(exc, sqlite3.OperationalError), lambda: None,
                               busy_timeout_ms=BUSY_TIMEOUT_MS)
    yield thread, commit
    await commit.close()
    await thread.close()


def inserting(n: int, ran: list[tuple[int, int]]) -> Callable[[sqlite3.Connection], int]:
    """A job inserting `n`; notes (n, the thread it ran on) each time it runs."""
    def job(db: sqlite3.Connection) -> int:
        ran.append((n, threading.get_ident()))
        return db.execute("INSERT INTO t VALUES (?)", (n,)).rowcount
    return job


def holding_the_connection(thread: SqliteThread, ran: list[tuple[int, int]]) -> asyncio.Task[None]:
    """The writer's thread using the connection for HELD_S; notes (0, its thread) in `ran` when done."""
    def slow(db: sqlite3.Connection) -> None:
        time.sleep(HELD_S)
        ran.append((0, threading.get_ident()))

    return asyncio.create_task(thread.run(slow))


def stored(path: Path) -> list[int]:
    with closing(sqlite3.connect(path)) as db:
        return [row[0] for row in db.execute("SELECT n FROM t ORDER BY rowid")]


async def ticking(stop: asyncio.Event) -> int:
    """Ticks of the event loop (every 10 ms) until `stop`: the loop was never blocked if they kept coming."""
    ticks = 0
    while not stop.is_set():
        await asyncio.sleep(0.01)
        ticks += 1
    return ticks


async def test_a_write_commits_on_the_event_loops_thread_when_nothing_waits(
    writer: tuple[SqliteThread, SqliteGroupCommit], tmp_path: Path
) -> None:
    _, commit = writer
    ran: list[tuple[int, int]] = []
    assert await commit.write(inserting(1, ran)) == 1
    assert ran == [(1, threading.get_ident())]
    assert commit.here == 1 and commit.transactions == 1
    assert stored(tmp_path / "t.db") == [1]


async def test_a_write_under_another_connections_lock_waits_on_the_writers_thread(
    writer: tuple[SqliteThread, SqliteGroupCommit], tmp_path: Path
) -> None:
    _, commit = writer
    ran: list[tuple[int, int]] = []
    stop = asyncio.Event()
    with closing(connect(tmp_path / "t.db")) as other:
        other.execute("BEGIN IMMEDIATE")
        ticker = asyncio.create_task(ticking(stop))
        write = asyncio.create_task(commit.write(inserting(2, ran)))
        await asyncio.sleep(HELD_S)
        assert not write.done() and ran == []  # not run, not failed: waiting for the lock
        other.execute("INSERT INTO t VALUES (1)")
        other.execute("COMMIT")
        assert await write == 1
        stop.set()
        assert await ticker >= HELD_S / 0.01 / 2  # the loop went on meanwhile
    assert [n for n, _ in ran] == [2] and ran[0][1] != threading.get_ident()  # once, on the writer's thread
    assert commit.here == 0
    assert stored(tmp_path / "t.db") == [1, 2]


async def test_a_write_while_the_writers_thread_holds_the_connection_runs_after_it_there(
    writer: tuple[SqliteThread, SqliteGroupCommit], tmp_path: Path
) -> None:
    thread, commit = writer
    ran: list[tuple[int, int]] = []
    busy = holding_the_connection(thread, ran)
    await asyncio.sleep(0.05)
    assert await commit.write(inserting(1, ran)) == 1
    await busy
    assert [n for n, _ in ran] == [0, 1]  # after the thread's work, never beside it
    assert ran[1][1] == ran[0][1] != threading.get_ident()
    assert commit.here == 0


async def test_a_cancelled_thread_call_keeps_the_connection_until_its_work_ends(
    writer: tuple[SqliteThread, SqliteGroupCommit], tmp_path: Path
) -> None:
    thread, commit = writer
    ran: list[tuple[int, int]] = []
    busy = holding_the_connection(thread, ran)
    await asyncio.sleep(0.05)
    busy.cancel()  # its caller gives up; the thread's work goes on
    assert await commit.write(inserting(1, ran)) == 1
    assert [n for n, _ in ran] == [0, 1]
    assert commit.here == 0


async def test_a_batch_too_big_for_the_event_loop_commits_on_the_writers_thread(
    writer: tuple[SqliteThread, SqliteGroupCommit], tmp_path: Path
) -> None:
    _, commit = writer
    ran: list[tuple[int, int]] = []
    jobs = HERE_MAX_JOBS + 8
    assert await asyncio.gather(*(commit.write(inserting(n, ran)) for n in range(jobs))) == [1] * jobs
    # The first task's write commits at once, alone; the others, queued in the same turn of
    # the event loop, share the next transaction, too big for the loop's thread.
    assert commit.transactions == 2 and commit.here == 1
    assert ran[0][1] == threading.get_ident()
    assert {thread for _, thread in ran[1:]} == {ran[1][1]} != {threading.get_ident()}
    assert stored(tmp_path / "t.db") == list(range(jobs))


async def test_writes_from_many_tasks_at_once_share_a_transaction(
    writer: tuple[SqliteThread, SqliteGroupCommit], tmp_path: Path
) -> None:
    _, commit = writer
    ran: list[tuple[int, int]] = []
    assert await asyncio.gather(*(commit.write(inserting(n, ran)) for n in range(10))) == [1] * 10
    assert commit.transactions == 2 and commit.here == 2  # the first alone, nine together; both on the loop
    assert stored(tmp_path / "t.db") == list(range(10))


async def test_one_tasks_writes_one_after_another_each_commit_at_once(
    writer: tuple[SqliteThread, SqliteGroupCommit], tmp_path: Path
) -> None:
    _, commit = writer
    ran: list[tuple[int, int]] = []
    for n in range(5):
        assert await commit.write(inserting(n, ran)) == 1
        assert stored(tmp_path / "t.db") == list(range(n + 1))  # committed before it returned
    assert commit.transactions == commit.here == 5


async def test_a_later_row_rides_along_with_the_next_write(
    writer: tuple[SqliteThread, SqliteGroupCommit], tmp_path: Path
) -> None:
    _, commit = writer
    ran: list[tuple[int, int]] = []
    commit.write_later(inserting(1, ran), "a later row", within=60)
    assert stored(tmp_path / "t.db") == []
    assert await commit.write(inserting(2, ran)) == 1
    assert stored(tmp_path / "t.db") == [1, 2]
    assert commit.transactions == commit.here == 1


async def test_a_failed_database_fails_the_rows_that_rode_along_too(
    writer: tuple[SqliteThread, SqliteGroupCommit], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, commit = writer
    ran: list[tuple[int, int]] = []

    def failing(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO t VALUES (3)")
        raise sqlite3.OperationalError("disk I/O error")  # what the fixture counts as a fault

    commit.write_later(inserting(1, ran), "a later row", within=60)
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        await commit.write(failing)
    await asyncio.sleep(0)  # the later row's failure is logged by its future's callback
    assert "could not store a later row: disk I/O error" in caplog.text
    assert stored(tmp_path / "t.db") == []  # all rolled back
    assert await commit.write(inserting(4, ran)) == 1  # and the next write goes on
    assert stored(tmp_path / "t.db") == [4]


async def test_a_failed_job_on_the_event_loops_thread_is_rolled_back_alone(
    writer: tuple[SqliteThread, SqliteGroupCommit], tmp_path: Path
) -> None:
    _, commit = writer
    ran: list[tuple[int, int]] = []

    def broken(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO t VALUES (99)")
        raise ValueError("a bug in one job")

    results = await asyncio.gather(commit.write(inserting(1, ran)), commit.write(broken),
                                   commit.write(inserting(2, ran)), return_exceptions=True)
    assert results[0] == 1 and isinstance(results[1], ValueError) and results[2] == 1
    assert commit.here == 2  # the first alone; the broken one and the third in a savepoint each
    assert stored(tmp_path / "t.db") == [1, 2]


async def test_a_long_job_commits_on_the_writers_thread_while_the_loop_goes_on(
    writer: tuple[SqliteThread, SqliteGroupCommit], tmp_path: Path
) -> None:
    _, commit = writer
    ran: list[tuple[int, int]] = []

    def reset(db: sqlite3.Connection) -> int:  # many rows: a reset, a prune
        ran.append((0, threading.get_ident()))
        time.sleep(HELD_S)
        return db.execute("INSERT INTO t VALUES (0)").rowcount

    stop = asyncio.Event()
    ticker = asyncio.create_task(ticking(stop))
    assert await commit.write(reset, long=True) == 1
    stop.set()
    assert await ticker >= HELD_S / 0.01 / 2  # the loop was not held up
    assert ran[0][1] != threading.get_ident() and commit.here == 0
    assert await commit.write(inserting(1, ran)) == 1 and commit.here == 1  # the next short one: on the loop



async def test_a_first_row_is_committed_at_once_when_nothing_else_is(
    writer: tuple[SqliteThread, SqliteGroupCommit], tmp_path: Path
) -> None:
    _, commit = writer
    ran: list[tuple[int, int]] = []
    commit.write_later(inserting(1, ran), "a reply's shown parts", within=60, first=True)
    assert stored(tmp_path / "t.db") == [1]  # before anything awaited: a crash now keeps it
    assert commit.here == 1


async def test_a_first_row_made_while_a_long_write_runs_is_committed_right_after_it(
    writer: tuple[SqliteThread, SqliteGroupCommit], tmp_path: Path
) -> None:
    _, commit = writer
    ran: list[tuple[int, int]] = []

    def slow(db: sqlite3.Connection) -> int:
        time.sleep(HELD_S)
        return db.execute("INSERT INTO t VALUES (0)").rowcount

    long = asyncio.create_task(commit.write(slow, long=True))
    await asyncio.sleep(0.05)  # the long one is being committed on the writer's thread
    commit.write_later(inserting(1, ran), "a reply's shown parts", within=60, first=True)
    assert stored(tmp_path / "t.db") == []
    await long
    await asyncio.sleep(0.05)
    assert stored(tmp_path / "t.db") == [0, 1]  # the next transaction, not `within` (60 s) later


async def test_writes_that_never_yield_to_the_loop_keep_the_wal_within_its_limit(tmp_path: Path) -> None:
    """A task writing in a loop whose writes all commit on the event loop's thread never
    lets the checkpointer's task run; past the WAL's limit its looks start the checkpoints
    themselves, then its writes go to the writer's thread, so the loop runs the
    checkpointer, which starts the WAL over. (Before, the WAL reached 1.6 GB while
    `scripts/store_sizes.py` wrote 20,000 messages so.)"""
    limit, path, key = 2 * 2**20, tmp_path / "s.sqlite3", ConversationKey("telegram", "1")
    largest = 0
    async with SqliteStore(path, wal_limit=limit) as store:
        for n in range(3000):  # about 37 MB of WAL
            await store.add_message(key, "user", "x" * 200, platform_message_id=str(n))
            largest = max(largest, wal_size(wal_path(path)))
        assert len(await store.history(key, limit=5000)) == 3000

    assert largest < 2 * limit
