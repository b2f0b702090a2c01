"""The retention part of the storage contract (`Retention`: pruning a batch at a time) and
compact verdicts, run against every implementation; then their SQLite and PostgreSQL
migrations and the SQLite WAL's restarts and truncation on a real file.

Rows are made "old" by pruning with a cutoff taken after they were stored."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path

import asyncpg
import pytest

from bot.messages import ConversationKey, Usage, Verdict
from bot.store import PostgresStore, SqliteStore, Store
from bot.store import postgres_schema as pg_schema
from bot.store.sqlite_schema import MIGRATIONS
from bot.store.sqlite_threads import SqliteThread
from bot.store.sqlite_wal import RUNAWAY, WalKeeper, wal_path
from tests.core.postgres_server import fresh_schema

pytestmark = pytest.mark.asyncio

ROOM = ConversationKey("discord", "general")
ELSEWHERE = ConversationKey("telegram", "-100")
FOREVER = 10**6  # a batch larger than any test's rows
BEFORE_COMPACTION = 7  # the migrations before the 8th, which compacted stored verdicts
OLD_VERDICT = Verdict(False, "classifier", {"hate": False, "violence": False},
                      {"hate": 0.0, "violence": 0.0123456}, "allow")


async def cutoff() -> float:
    """A moment after everything stored so far and before anything stored next."""
    await asyncio.sleep(0.01)
    moment = time.time()
    await asyncio.sleep(0.01)
    return moment


async def user_message(store: Store, text: str, key: ConversationKey = ROOM) -> int:
    new_id = await store.add_message(key, "user", text, status="answered")
    assert new_id is not None
    return new_id


async def texts(store: Store, key: ConversationKey = ROOM) -> list[str]:
    return [m.text for m in await store.history(key)]


# Verdicts.


async def test_verdicts_before_the_cutoff_are_deleted(store: Store) -> None:
    await store.add_verdict(ROOM, None, "input", Verdict(True, "words", {"hate": True}))
    await store.add_verdict(ELSEWHERE, None, "input", Verdict(False))
    before = await cutoff()
    young = Verdict(False, "classifier", {"hate": False}, {"hate": 0.5})
    await store.add_verdict(ROOM, None, "output", young)

    assert await store.prune_verdicts(before, FOREVER) == 2
    assert await store.verdicts(ROOM) == [(None, "output", young)]
    assert await store.verdicts(ELSEWHERE) == []


async def test_verdicts_are_pruned_a_batch_at_a_time(store: Store) -> None:
    for _ in range(5):
        await store.add_verdict(ROOM, None, "input", Verdict(False))
    before = await cutoff()
    assert [await store.prune_verdicts(before, 2) for _ in range(4)] == [2, 2, 1, 0]


async def test_a_flagged_message_stays_hidden_after_its_verdict_is_pruned(store: Store) -> None:
    flagged = await user_message(store, "bad")
    await store.add_verdict(ROOM, flagged, "input", Verdict(True, "words", {"hate": True}, {}, "block"))
    await user_message(store, "fine")
    await store.prune_verdicts(await cutoff(), FOREVER)
    assert await texts(store) == ["fine"]


# Usage rows.


async def test_usage_rows_of_days_before_the_cutoff_are_deleted(store: Store) -> None:
    rows = [Usage(day, "discord", "general", "ann", "Ann", 1) for day in ("2026-01-30", "2026-01-31",
                                                                          "2026-02-01")]
    await store.add_usage(rows)
    assert await store.prune_usage("2026-02-01", FOREVER) == 2
    assert await store.usage("2026-01-01") == [rows[2]]


async def test_usage_rows_are_pruned_a_batch_at_a_time(store: Store) -> None:
    await store.add_usage([Usage("2026-01-01", "discord", "general", str(n)) for n in range(3)])
    assert [await store.prune_usage("2026-02-01", 2) for _ in range(3)] == [2, 1, 0]


# Messages.


async def test_messages_before_the_cutoff_are_deleted(store: Store) -> None:
    await user_message(store, "old")
    await user_message(store, "old elsewhere", ELSEWHERE)
    before = await cutoff()
    await user_message(store, "new")
    assert await store.prune_messages(before, FOREVER) == 2
    assert await texts(store) == ["new"]
    assert await store.message_count() == 1


async def test_a_pending_message_is_never_deleted(store: Store) -> None:
    await store.add_message(ROOM, "user", "still waiting")
    await user_message(store, "answered")
    assert await store.prune_messages(await cutoff(), FOREVER) == 1
    assert [p.text for p in await store.pending(0.0)] == ["still waiting"]


async def test_a_question_whose_reply_is_younger_is_kept(store: Store) -> None:
    question = await user_message(store, "question")
    before = await cutoff()
    await store.add_message(ROOM, "assistant", "reply", reply_to=question)
    assert await store.prune_messages(before, FOREVER) == 0
    assert await texts(store) == ["question", "reply"]


async def test_an_undelivered_reply_and_its_question_are_kept(store: Store) -> None:
    question = await user_message(store, "question")
    await store.add_message(ROOM, "assistant", "reply", reply_to=question, status="undelivered")
    assert await store.prune_messages(await cutoff(), FOREVER) == 0
    assert await store.message_count() == 2


async def test_a_whole_old_turn_is_deleted(store: Store) -> None:
    question = await user_message(store, "question")
    await store.add_message(ROOM, "assistant", "reply", reply_to=question)
    assert await store.prune_messages(await cutoff(), FOREVER) == 2
    assert await store.message_count() == 0


async def test_messages_are_pruned_a_batch_at_a_time(store: Store) -> None:
    for n in range(5):
        await user_message(store, str(n))
    before = await cutoff()
    assert [await store.prune_messages(before, 2) for _ in range(4)] == [2, 2, 1, 0]


async def test_a_pruned_message_leaves_its_verdict_detached(store: Store) -> None:
    message = await user_message(store, "judged")
    await store.add_verdict(ROOM, message, "input", Verdict(False))
    await store.prune_messages(await cutoff(), FOREVER)
    assert await store.verdicts(ROOM) == [(None, "input", Verdict(False))]


async def test_the_context_floor_holds_after_a_prune(store: Store) -> None:
    await user_message(store, "before the floor")
    floor = await user_message(store, "after the floor")
    await store.set_context_floor(ROOM, floor)
    before = await cutoff()
    await user_message(store, "newest")
    await store.prune_messages(before, FOREVER)
    assert await texts(store) == ["newest"]
    await user_message(store, "and one more")
    assert await texts(store) == ["newest", "and one more"]


# Compact verdicts.


async def test_a_verdict_keeps_its_flagged_categories_and_nonzero_scores(store: Store) -> None:
    full = Verdict(True, "classifier", {"hate": True, "sexual": False, "violence": False},
                   {"hate": 0.9712345, "sexual": 0.0, "violence": 0.0001}, "block")
    await store.add_verdict(ROOM, None, "input", full)
    [(_, _, stored)] = await store.verdicts(ROOM)
    assert stored == Verdict(True, "classifier", {"hate": True}, {"hate": 0.971}, "block")


async def test_an_unflagged_category_with_a_score_reads_back_unflagged(store: Store) -> None:
    await store.add_verdict(ROOM, None, "input", OLD_VERDICT)
    [(_, _, stored)] = await store.verdicts(ROOM)
    assert stored == Verdict(False, "classifier", {"violence": False}, {"violence": 0.012}, "allow")


# The migrations turn verdicts stored whole into the compact form.


def old_verdict_row() -> tuple[str, str]:
    return json.dumps(OLD_VERDICT.categories), json.dumps(OLD_VERDICT.category_scores)


async def test_sqlite_migration_compacts_stored_verdicts(tmp_path: Path) -> None:
    path = tmp_path / "hearth.sqlite3"
    async with SqliteStore(path, migrations=MIGRATIONS[:BEFORE_COMPACTION]):
        pass
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("INSERT INTO conversations (platform, channel, created_at) "
                   "VALUES ('discord', 'general', 0)")
        db.execute("""INSERT INTO verdicts (conversation_id, direction, layer, flagged, categories,
            category_scores, action, created_at) VALUES (1, 'input', 'classifier', 0, ?, ?, 'allow', 0)""",
                   old_verdict_row())
    async with SqliteStore(path) as store:
        [(_, _, stored)] = await store.verdicts(ROOM)
    assert stored == Verdict(False, "classifier", {"violence": False}, {"violence": 0.012}, "allow")


async def test_postgres_migration_compacts_stored_verdicts() -> None:
    async with fresh_schema() as url:
        async with PostgresStore(url, migrations=pg_schema.MIGRATIONS[:BEFORE_COMPACTION]):
            pass
        db = await asyncpg.connect(url)
        try:
            conversation = await db.fetchval(
                "INSERT INTO conversations (platform, channel, created_at) VALUES ('discord', 'general', 0) "
                "RETURNING id")
            await db.execute("""INSERT INTO verdicts (conversation_id, direction, layer, flagged, categories,
                category_scores, action, created_at) VALUES ($1, 'input', 'classifier', FALSE, $2, $3,
                'allow', 0)""", conversation, *old_verdict_row())
        finally:
            await db.close()
        async with PostgresStore(url) as store:
            [(_, _, stored)] = await store.verdicts(ROOM)
    assert stored == Verdict(False, "classifier", {"violence": False}, {"violence": 0.012}, "allow")


# SQLite's WAL: started over, or truncated when idle, measured on the file.


async def fill_wal(store: SqliteStore, messages: int = 200) -> None:
    for n in range(messages):
        await store.add_message(ROOM, "user", f"message {n} " * 40)


@asynccontextmanager
async def checkpointer(path: Path) -> AsyncIterator[SqliteThread]:
    """A connection of its own for a `WalKeeper`, as the store opens one."""
    thread = SqliteThread("test-checkpointer")
    await thread.open(lambda: sqlite3.connect(path, isolation_level=None, check_same_thread=False))
    try:
        yield thread
    finally:
        await thread.close()


def frames_in_wal(path: Path) -> int:
    """How many frames the WAL holds now (a PASSIVE checkpoint's second column)."""
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        return int(db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])


async def test_a_wal_past_its_limit_is_started_over(tmp_path: Path) -> None:
    path = tmp_path / "hearth.sqlite3"
    async with SqliteStore(path, checkpoint_interval=3600) as store:  # its own task never looks
        await fill_wal(store)
        size = wal_path(path).stat().st_size
        assert size > 100_000
        async with checkpointer(path) as thread:
            assert await WalKeeper(thread, path, limit_bytes=100_000).look(regular=False) == "restarted"
        await fill_wal(store, 1)  # the store writes on after the restart: at the file's start
        assert frames_in_wal(path) < 10
        assert wal_path(path).stat().st_size <= size  # the file did not grow
        assert await store.message_count() == 201


async def test_writes_wait_for_a_restart_only_once_the_wal_was_copied_without_them(tmp_path: Path) -> None:
    """Past the limit, a PASSIVE checkpoint runs first while writes go on; only once it
    caught up should writers wait (for the RESTART); at RUNAWAY times the limit, at once."""
    path = tmp_path / "hearth.sqlite3"
    async with SqliteStore(path, checkpoint_interval=3600) as store:
        await fill_wal(store)
        size = wal_path(path).stat().st_size
        async with checkpointer(path) as thread:
            limit = size - 1
            assert WalKeeper(thread, path, limit_bytes=limit).past_limit(RUNAWAY * limit + 1)
            keeper = WalKeeper(thread, path, limit_bytes=limit)
            assert not keeper.past_limit(size)  # the PASSIVE began: writes go on meanwhile
            for _ in range(500):  # at most 5 s; the assertion is what it says then
                if keeper.past_limit(size):
                    break
                await asyncio.sleep(0.01)
            assert keeper.past_limit(size)
        assert frames_in_wal(path) > 0  # copied, not started over: that is the RESTART's


async def test_an_idle_wal_is_truncated_at_the_next_regular_look(tmp_path: Path) -> None:
    path = tmp_path / "hearth.sqlite3"
    async with SqliteStore(path, checkpoint_interval=3600) as store:
        await fill_wal(store)
        async with checkpointer(path) as thread:
            keeper = WalKeeper(thread, path)
            assert await keeper.look(regular=True) == "passive"  # writes since the last look
            assert wal_path(path).stat().st_size > 0
            assert await keeper.look(regular=True) == "truncated"  # none since: idle
        assert wal_path(path).stat().st_size == 0


async def test_the_checkpoint_task_truncates_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "hearth.sqlite3"
    async with SqliteStore(path, checkpoint_interval=0.05) as store:
        await fill_wal(store)
        for _ in range(200):  # the task's looks, at most 10 s; the assertion is the file's size
            if wal_path(path).stat().st_size == 0:
                break
            await asyncio.sleep(0.05)
        assert wal_path(path).stat().st_size == 0
        assert await store.message_count() == 200
