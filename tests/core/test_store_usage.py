"""The usage log (daily counters per author and channel), run against every store.

PostgreSQL's cases need a server (HEARTH_TEST_DATABASE_URL; see tests/core/postgres_server.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.messages import ConversationKey, Usage
from bot.store import SqliteStore, Store
from bot.store import postgres_schema as pg_sql
from bot.store import sqlite as sqlite_store

DAY = "2026-11-22"
NEXT_DAY = "2026-11-23"


def row(day: str = DAY, channel: str = "c1", author: str = "u1", **counts: int) -> Usage:
    return Usage(day, "telegram", channel, author, f"name-{author}", **counts)


async def test_counts_add_up_per_day_channel_and_author(store: Store) -> None:
    await store.add_usage([row(messages=1, prompt_tokens=10, cached_tokens=4, reply_tokens=5)])
    await store.add_usage([row(messages=1, refused=2, prompt_tokens=20, reply_tokens=7)])

    [stored] = await store.usage(DAY)
    assert (stored.messages, stored.refused) == (2, 2)
    assert (stored.prompt_tokens, stored.cached_tokens, stored.reply_tokens) == (30, 4, 12)
    assert stored.tokens == 30 - 4 + 12


async def test_a_batch_is_added_whole_even_with_one_key_twice(store: Store) -> None:
    await store.add_usage([row(messages=1), row(messages=2), row(author="u2", messages=5)])

    assert [(u.author_id, u.messages) for u in await store.usage(DAY)] == [("u1", 3), ("u2", 5)]


async def test_an_empty_batch_is_nothing(store: Store) -> None:
    await store.add_usage([])

    assert await store.usage("0000-00-00") == []


async def test_filters_and_days(store: Store) -> None:
    await store.add_usage([
        row(messages=1), row(channel="c2", messages=2), row(author="u2", messages=4),
        row(NEXT_DAY, messages=8), Usage(DAY, "discord", "c1", "u1", messages=16),
    ])

    assert [u.messages for u in await store.usage(NEXT_DAY)] == [8]
    assert [u.messages for u in await store.usage(DAY, platform="telegram", author_id="u1")] == [1, 2, 8]
    assert [u.messages for u in await store.usage(DAY, platform="telegram", channel="c1")] == [1, 4, 8]
    assert [u.messages for u in await store.usage(DAY, channel="c1", author_id="u1")] == [16, 1, 8]
    assert sum(u.messages for u in await store.usage(DAY)) == 31


async def test_ordered_by_day_platform_channel_author(store: Store) -> None:
    await store.add_usage([row(NEXT_DAY, "c1", "u1"), row(DAY, "c2", "u1"), row(DAY, "c1", "u2"),
                           row(DAY, "c1", "u1")])

    keys = [(u.day, u.channel, u.author_id) for u in await store.usage(DAY)]
    assert keys == sorted(keys)


async def test_the_latest_name_wins_and_an_empty_one_keeps_it(store: Store) -> None:
    await store.add_usage([Usage(DAY, "telegram", "c1", "u1", "Ann", messages=1)])
    await store.add_usage([Usage(DAY, "telegram", "c1", "u1", "", messages=1)])
    assert [u.author_name for u in await store.usage(DAY)] == ["Ann"]

    await store.add_usage([Usage(DAY, "telegram", "c1", "u1", "Annie", messages=1)])
    assert [u.author_name for u in await store.usage(DAY)] == ["Annie"]


async def test_concurrent_batches_lose_no_count(store: Store) -> None:
    batches = [[row(author=f"u{n % 3}", messages=1, reply_tokens=n)] for n in range(30)]

    await asyncio.gather(*(store.add_usage(batch) for batch in batches))

    stored = await store.usage(DAY)
    assert sum(u.messages for u in stored) == 30
    assert sum(u.reply_tokens for u in stored) == sum(range(30))


async def test_usage_is_kept_apart_from_conversations(store: Store) -> None:
    key = ConversationKey("telegram", "c1")
    await store.add_message(key, "user", "hi")
    await store.add_usage([row(messages=1)])

    await store.reset(key)

    assert [u.messages for u in await store.usage(DAY)] == [1], "a /reset does not refill a quota"


async def test_usage_survives_reopening(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "db") as first:
        await first.add_usage([row(messages=3)])
    async with SqliteStore(tmp_path / "db") as second:
        assert [u.messages for u in await second.usage(DAY)] == [3]


def test_the_usage_migration_is_number_seven_on_both_databases() -> None:
    assert len(sqlite_store.MIGRATIONS) == len(pg_sql.MIGRATIONS) >= 7  # later ones append
    assert "CREATE TABLE usage" in sqlite_store.MIGRATIONS[6]
    assert "CREATE TABLE usage" in pg_sql.MIGRATIONS[6]
