"""A failing database, for real: a SQLite file locked by another connection, a tmpfs that
fills up. Calls are retried within the caller's patience, then StoreUnavailableError;
health says so once; nothing half-written remains."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from bot.errors import StoreUnavailableError
from bot.messages import ConversationKey
from bot.store import SqliteStore
from bot.store.faults import StoreHealth, patience, retried_on
from bot.store.sqlite import is_fault
from tests.conftest import small_tmpfs

ROOM = ConversationKey("telegram", "room")
BUSY_S = 0.3


@contextmanager
def locked(path: Path) -> Iterator[sqlite3.Connection]:
    """Another process's view: a connection holding SQLite's exclusive write lock."""
    with closing(sqlite3.connect(path, isolation_level=None, timeout=10)) as other:
        other.execute("BEGIN EXCLUSIVE")
        try:
            yield other
        finally:
            other.execute("ROLLBACK")


async def test_a_write_under_a_held_lock_gives_up_after_the_patience_and_commits_nothing(
    tmp_path: Path,
) -> None:
    db = tmp_path / "hearth.sqlite3"
    async with SqliteStore(db, busy_timeout_s=BUSY_S) as store:
        await store.add_message(ROOM, "user", "before", platform_message_id="1")
        with locked(db):
            started = time.monotonic()
            with pytest.raises(StoreUnavailableError, match="database is locked"), patience(1.0):
                await store.add_message(ROOM, "user", "during", platform_message_id="2")
            assert time.monotonic() - started < 1.0 + BUSY_S + 0.5
            assert store.health.state == "failing"
            assert "locked" in store.health.reason
        assert [m.text for m in await store.history(ROOM)] == ["before"]


async def test_without_a_patience_a_write_waits_for_the_lock_and_then_commits(tmp_path: Path) -> None:
    db = tmp_path / "hearth.sqlite3"
    async with SqliteStore(db, busy_timeout_s=BUSY_S) as store:
        await store.add_message(ROOM, "user", "before", platform_message_id="1")
        told: list[str] = []
        store.health.listen(lambda state, reason: told.append(state))
        with locked(db):
            write = asyncio.ensure_future(store.add_message(ROOM, "user", "during", platform_message_id="2"))
            await asyncio.sleep(1.5)  # several tries fail meanwhile
            assert not write.done()
        assert await asyncio.wait_for(write, 10) is not None
        assert [m.text for m in await store.history(ROOM)] == ["before", "during"]
        assert told == ["failing", "ok"], "one notice per outage, one per recovery"


async def test_reads_go_on_while_another_connection_holds_the_write_lock(tmp_path: Path) -> None:
    db = tmp_path / "hearth.sqlite3"
    async with SqliteStore(db, busy_timeout_s=BUSY_S) as store:
        await store.add_message(ROOM, "user", "kept", platform_message_id="1")
        with locked(db), patience(0):
            assert [m.text for m in await store.history(ROOM)] == ["kept"]  # WAL: readers are not blocked


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs of its own, unmounted afterwards."""
    with small_tmpfs(tmp_path / "small", "1m") as mount:
        yield mount


async def test_a_full_disk_is_a_fault_and_the_store_recovers_when_space_returns(small_disk: Path) -> None:
    async with SqliteStore(small_disk / "hearth.sqlite3", busy_timeout_s=BUSY_S) as store:
        await store.add_message(ROOM, "user", "before", platform_message_id="0")
        filler = small_disk / "filler"
        with filler.open("wb") as file, pytest.raises(OSError):
            file.write(b"\0" * (2 << 20))  # fills the disk to the last byte
        with pytest.raises(StoreUnavailableError, match="full"), patience(1.0):
            for n in range(1, 2000):  # the WAL grows until a page no longer fits
                await store.add_message(ROOM, "user", "x" * 2000, platform_message_id=str(n))
        filler.unlink()
        assert await store.add_message(ROOM, "user", "after", platform_message_id="after") is not None
        assert store.health.state == "ok"


def test_a_statement_error_is_a_bug_not_a_fault() -> None:
    with closing(sqlite3.connect(":memory:")) as db:
        try:
            db.execute("SELEC 1")
        except sqlite3.OperationalError as exc:
            assert not is_fault(exc)
    assert not is_fault(sqlite3.IntegrityError("UNIQUE constraint failed"))
    assert is_fault(sqlite3.DatabaseError("database disk image is malformed"))


@retried_on(lambda exc: isinstance(exc, ConnectionError), str)
class Flaky:
    """Fails its first `failures` calls the way a dropped database connection does."""

    def __init__(self, failures: int) -> None:
        self.health = StoreHealth()
        self.failures = failures
        self.calls = 0

    async def write(self, value: int) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("connection refused")
        return value

    async def broken(self) -> None:
        raise ValueError("a bug, not the database")


async def test_patience_zero_is_one_try_and_none_retries_until_it_works() -> None:
    with patience(0), pytest.raises(StoreUnavailableError):
        await Flaky(1).write(1)
    flaky = Flaky(3)
    assert await flaky.write(7) == 7
    assert flaky.calls == 4 and flaky.health.state == "ok" and flaky.health.outages == 1


async def test_other_errors_pass_through_at_once() -> None:
    flaky = Flaky(0)
    with pytest.raises(ValueError, match="a bug"):
        await flaky.broken()
    assert flaky.health.state == "ok"
