"""Nothing lost while the database fails: intake does not acknowledge what it could not
store, Discord-like platforms journal it instead, and a reply shown in full is recorded
(now, or from the journal at the next start). A real SQLite file, locked for real by
another connection; the fake engine."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing, contextmanager
from pathlib import Path

import pytest

from bot.app.builder import App, HearthBuilder
from bot.app.settings import Settings
from bot.errors import StoreUnavailableError
from bot.store import SqliteStore
from engine.fake import FakeEngine
from tests.conftest import TODAY
from tests.fakes import RecordingAdapter, message

BUSY_S = 0.3


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Another process holding SQLite's exclusive write lock."""
    with closing(sqlite3.connect(path, isolation_level=None, timeout=10)) as other:
        other.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")


@asynccontextmanager
async def hearth(settings: Settings, engine: FakeEngine) -> AsyncIterator[App]:
    async with SqliteStore(settings.database, busy_timeout_s=BUSY_S) as store:
        await engine.start()
        async with HearthBuilder(settings).engine(engine).store(store).today(lambda: TODAY).build() as app:
            yield app


def stored(db: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return list(conn.execute(sql))


async def settle(app: App) -> None:
    """Until nothing is being answered (bounded)."""
    for _ in range(200):
        if not app.pipeline.in_flight():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("replies still running")


async def test_a_message_the_store_cannot_take_is_not_acknowledged_and_no_one_is_told(
    settings: Settings, engine: FakeEngine, adapter: RecordingAdapter
) -> None:
    async with hearth(settings, engine) as app:
        with locked(settings.database), pytest.raises(StoreUnavailableError):
            await app.pipeline.submit(message("hello?", "1"), adapter)
        assert adapter.sent == [], "the user hears nothing: the platform delivers it again"
        assert await app.store.message_count() == 0

        await app.pipeline.handle(message("hello?", "1"), adapter)  # delivered again, store back
        assert adapter.texts() == ["echo: hello?"]


async def test_journalled_messages_are_stored_and_answered_in_order_once_the_store_is_back(
    settings: Settings, engine: FakeEngine, adapter: RecordingAdapter
) -> None:
    async with hearth(settings, engine) as app:
        with locked(settings.database):
            assert await app.journalled.submit(message("first", "1"), adapter) is None
            assert await app.journalled.submit(message("second", "2"), adapter) is None  # behind, at once
            journal = [json.loads(line) for line in settings.journal.read_text("utf-8").splitlines()]
            assert [e["message"]["text"] for e in journal] == ["first", "second"]
            assert adapter.sent == []

        for _ in range(100):
            if len(adapter.texts()) == 2 and not settings.journal.exists():
                break
            await asyncio.sleep(0.1)
        await settle(app)
        assert adapter.texts() == ["echo: first", "echo: second"]
        assert not settings.journal.exists(), "an empty journal is removed"
        users = stored(settings.database, "SELECT text, status FROM messages WHERE role = 'user' ORDER BY id")
        assert users == [("first", "answered"), ("second", "answered")]


async def test_a_reply_shown_but_not_recorded_at_shutdown_is_recorded_at_the_next_start_not_answered_again(
    settings: Settings, engine: FakeEngine, adapter: RecordingAdapter
) -> None:
    engine.delay = 0.05
    async with hearth(settings, engine) as app:
        task = await app.pipeline.submit(message("tell me something", "1"), adapter)
        assert task is not None
        while not adapter.sent:  # noqa: ASYNC110 - streaming: the gate and the store are past
            await asyncio.sleep(0.01)
        with locked(settings.database):
            await asyncio.wait([task], timeout=3)  # shown in full; the record waits for the lock
            assert adapter.texts() == ["echo: tell me something"]
            assert not task.done()
            await app.pipeline.drain(0.0)  # a shutdown cuts the wait
    assert len(settings.journal.read_text("utf-8").splitlines()) == 1

    async with hearth(settings, engine) as app:
        assert await app.journalled.replay({"telegram": adapter}) == 1
        recovered = await app.recovery.run({"telegram": adapter})
        assert recovered.resumed == 0, "the question was answered: the journal recorded it"
    assert adapter.texts() == ["echo: tell me something"]
    rows = stored(settings.database, "SELECT role, status, platform_message_id FROM messages ORDER BY id")
    assert rows == [("user", "answered", "1"), ("assistant", "answered", adapter.sent[0].message_id)]
    assert not settings.journal.exists()


async def test_journalled_messages_left_by_a_crash_are_answered_after_recovery_exactly_once(
    settings: Settings, engine: FakeEngine, adapter: RecordingAdapter
) -> None:
    async with hearth(settings, engine) as app:
        with locked(settings.database):
            await app.journalled.submit(message("while locked", "1"), adapter)
            await app.journalled.close()  # as a kill would: nothing handed over

    async with hearth(settings, engine) as app:
        await app.journalled.replay({"telegram": adapter})
        await app.recovery.run({"telegram": adapter})
        app.journalled.start()
        for _ in range(100):
            if adapter.texts():
                break
            await asyncio.sleep(0.05)
        await settle(app)
    assert adapter.texts() == ["echo: while locked"]
    assert stored(settings.database, "SELECT COUNT(*) FROM messages WHERE role = 'user'") == [(1,)]
    assert not settings.journal.exists()
