"""PostgreSQL's own promises: migrations, reopening, and two processes on one database.

Each `PostgresStore` has a pool of its own, so two stores are two clients of the
server exactly as two Hearth processes are. The contract is in test_store.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from bot.messages import ConversationKey, Verdict
from bot.store import PostgresStore
from bot.store import postgres_schema as pg_sql
from bot.store import sqlite as sqlite_store
from bot.store.sqlite import SchemaTooNewError
from tests.core.postgres_server import fresh_schema

ROOM = ConversationKey("discord", "general")
THREAD = ConversationKey("discord", "general", "t1")
CONVERSATIONS = 8
MESSAGES_PER_CONVERSATION = 5
ROUNDS = 10
WAIT_S = 5.0


@pytest_asyncio.fixture
async def url() -> AsyncIterator[str]:
    async with fresh_schema() as schema_url:
        yield schema_url


async def schema_version(url: str) -> int:
    db = await asyncpg.connect(url)
    try:
        return int(await db.fetchval("SELECT max(version) FROM hearth_schema"))
    finally:
        await db.close()


async def add_spread(store: PostgresStore, tag: str) -> list[int]:
    """Pending messages spread over several conversations; their ids."""
    ids = []
    for n in range(CONVERSATIONS * MESSAGES_PER_CONVERSATION):
        key = ConversationKey("discord", f"{tag}-c{n % CONVERSATIONS}")
        new_id = await store.add_message(key, "user", f"{tag}-{n}")
        assert new_id is not None
        ids.append(new_id)
    return ids


async def wait_for_lock_waiters(admin: asyncpg.Connection, count: int) -> None:
    """Until `count` claims wait on a row lock (bounded)."""
    deadline = time.monotonic() + WAIT_S
    query = ("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
             "AND query LIKE '%claimable%'")
    while await admin.fetchval(query) < count:
        assert time.monotonic() < deadline, "the claims never reached the lock"
        await asyncio.sleep(0.01)


# Migrations.


def test_migrations_mirror_sqlites() -> None:
    """A schema version means the same tables on either database."""
    assert len(pg_sql.MIGRATIONS) == len(sqlite_store.MIGRATIONS)


async def test_schema_version_counts_migrations(url: str) -> None:
    async with PostgresStore(url):
        pass
    assert await schema_version(url) == len(pg_sql.MIGRATIONS)


async def test_reopening_applies_only_missing_migrations(url: str) -> None:
    # Counts its own runs: a migration run twice would leave "2".
    counter = ("INSERT INTO global_settings (name, value) VALUES ('runs', '1') ON CONFLICT (name) "
               "DO UPDATE SET value = (global_settings.value::int + 1)::text;")
    async with PostgresStore(url) as store:
        await store.add_message(ROOM, "user", "kept")
    for _ in range(2):
        async with PostgresStore(url, migrations=(*pg_sql.MIGRATIONS, counter)) as store:
            assert await store.get_setting("runs") == "1"
            assert [m.text for m in await store.history(ROOM)] == ["kept"]
    assert await schema_version(url) == len(pg_sql.MIGRATIONS) + 1


async def test_failed_migration_changes_nothing(url: str) -> None:
    broken = "CREATE TABLE extra (x INTEGER); INSERT INTO missing VALUES (1);"
    store = PostgresStore(url, migrations=(*pg_sql.MIGRATIONS, broken))
    with pytest.raises(asyncpg.UndefinedTableError):
        await store.open()
    with pytest.raises(RuntimeError):  # the failed open left nothing half open
        await store.message_count()
    async with PostgresStore(url) as store:
        assert await store.message_count() == 0
    assert await schema_version(url) == len(pg_sql.MIGRATIONS)


async def test_newer_schema_is_refused(url: str) -> None:
    async with PostgresStore(url, migrations=(*pg_sql.MIGRATIONS, "SELECT 1;")):
        pass
    with pytest.raises(SchemaTooNewError) as raised:
        await PostgresStore(url).open()
    supported = len(pg_sql.MIGRATIONS)
    assert (raised.value.found, raised.value.supported) == (supported + 1, supported)


async def test_two_processes_starting_at_once_migrate_once(url: str) -> None:
    first, second = PostgresStore(url), PostgresStore(url)
    await asyncio.gather(first.open(), second.open())
    try:
        assert await first.add_message(ROOM, "user", "a") is not None
        assert await second.message_count() == 1
    finally:
        await asyncio.gather(first.close(), second.close())
    assert await schema_version(url) == len(pg_sql.MIGRATIONS)


# Reopening.


async def test_data_survives_reopening(url: str) -> None:
    async with PostgresStore(url) as store:
        first = await store.add_message(THREAD, "user", "a")
        second = await store.add_message(THREAD, "user", "b")
        assert first is not None and second is not None
        await store.set_context_floor(THREAD, second)
        await store.set_channel_persona(ROOM, "pirate")
        await store.set_setting("model", "small")
        await store.add_verdict(THREAD, second, "in", Verdict(True, "words", {"hate": True}))
    async with PostgresStore(url) as store:
        assert [m.text for m in await store.history(THREAD)] == ["b"]
        assert await store.message_count() == 2
        assert await store.get_channel_persona(THREAD) == "pirate"
        assert await store.get_setting("model") == "small"
        assert await store.verdicts(THREAD) == [(second, "in", Verdict(True, "words", {"hate": True}))]


async def test_open_and_close_are_idempotent(url: str) -> None:
    store = PostgresStore(url)
    await store.open()
    await store.open()
    await store.add_message(ROOM, "user", "a")
    await store.close()
    await store.close()
    await store.open()
    assert [m.text for m in await store.history(ROOM)] == ["a"]
    await store.close()


async def test_an_unreachable_server_fails_the_open() -> None:
    store = PostgresStore("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(OSError):
        await store.open()
    with pytest.raises(RuntimeError):
        await store.message_count()


# Two processes on one database.


@pytest_asyncio.fixture
async def two(url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    async with PostgresStore(url) as first, PostgresStore(url) as second:
        yield first, second


async def test_a_delivery_to_both_processes_is_stored_once(two: tuple[PostgresStore, PostgresStore]) -> None:
    """Both processes receive every message (two gateway sessions): only one answers."""
    first, second = two
    for n in range(ROUNDS):
        ids = await asyncio.gather(*(
            store.add_message(ROOM, "user", "hi", platform_message_id=f"p{n}") for store in two))
        assert sum(i is not None for i in ids) == 1
    assert await first.message_count() == await second.message_count() == ROUNDS


async def test_both_processes_see_one_order(two: tuple[PostgresStore, PostgresStore]) -> None:
    first, second = two
    question = await first.add_message(ROOM, "user", "q1")
    await second.add_message(ROOM, "user", "q2")
    await second.add_message(ROOM, "assistant", "a1", reply_to=question)

    expected = ["q1", "a1", "q2"]
    assert [m.text for m in await first.history(ROOM)] == expected
    assert [m.text for m in await second.history(ROOM)] == expected


async def test_simultaneous_claims_take_each_message_once(two: tuple[PostgresStore, PostgresStore]) -> None:
    for n in range(ROUNDS):
        ids = await add_spread(two[0], f"r{n}")
        owners = (f"{n}-first", f"{n}-second")  # new owners: an owner takes back its own claims
        claiming = (store.claim_pending(0, owner) for owner, store in zip(owners, two, strict=True))
        claims = await asyncio.gather(*claiming)
        claimed = [p.id for claim in claims for p in claim]
        assert sorted(claimed) == ids, "a message was claimed twice or not at all"


async def test_claims_released_at_once_split_by_conversation(
    url: str, two: tuple[PostgresStore, PostgresStore]
) -> None:
    """Both claims wait on a lock, then run at the same moment: no message goes to
    both, none to neither, and every conversation goes whole to one of them."""
    ids = await add_spread(two[0], "held")
    admin = await asyncpg.connect(url)
    try:
        holding = admin.transaction()
        await holding.start()
        await admin.execute("SELECT id FROM conversations FOR NO KEY UPDATE")
        claims = [asyncio.create_task(store.claim_pending(0, f"owner{i}")) for i, store in enumerate(two)]
        await wait_for_lock_waiters(admin, len(claims))
        await holding.rollback()
        results = await asyncio.gather(*claims)
    finally:
        await admin.close()

    assert sorted(p.id for claim in results for p in claim) == ids
    owners_by_conversation = {(p.key, i) for i, claim in enumerate(results) for p in claim}
    assert len(owners_by_conversation) == CONVERSATIONS


async def test_claims_meet_new_messages(two: tuple[PostgresStore, PostgresStore]) -> None:
    """Claims while the other process stores: each message claimed at most once."""
    first, second = two
    writing = asyncio.create_task(add_spread(first, "live"))
    claimed: list[int] = []
    while not writing.done():
        claimed += [p.id for p in await second.claim_pending(0, "second")]
        claimed += [p.id for p in await first.claim_pending(0, "first")]
    ids = await writing
    claimed += [p.id for p in await second.claim_pending(0, "second")]
    assert sorted(set(claimed)) == ids


async def test_concurrent_writes_share_transactions_in_the_order_they_were_called(url: str) -> None:
    """Group commit: 200 writes from 100 tasks at once take far fewer transactions than
    writes, and the ids still follow the order of the calls."""
    async with PostgresStore(url) as store:
        await store.add_message(ROOM, "user", "warm-up")
        before = store.transactions
        calls = [store.add_message(ConversationKey("discord", f"c{n % 100}"), "user", f"m{n}")
                 for n in range(200)]
        ids = await asyncio.gather(*calls)
        assert ids == sorted(ids) and None not in ids
        assert store.transactions - before < 100


async def test_a_write_that_fails_alone_fails_alone_in_a_shared_transaction(url: str) -> None:
    """A verdict about a message that does not exist (a foreign key) is refused; the
    writes that shared its transaction are stored all the same."""
    async with PostgresStore(url) as store:
        question = await store.add_message(ROOM, "user", "question")
        assert question is not None
        writes = [
            store.add_message(ROOM, "user", "before"),
            store.add_verdict(ROOM, 10**9, "input", Verdict(False)),
            store.add_verdict(ROOM, question, "input", Verdict(False)),
            store.add_message(ROOM, "user", "after"),
        ]
        before, missing, verdict, after = await asyncio.gather(*writes, return_exceptions=True)
        assert isinstance(missing, ValueError)
        assert isinstance(before, int) and isinstance(after, int) and isinstance(verdict, int)
        assert [m.text for m in await store.history(ROOM)] == ["question", "before", "after"]
        assert [(message_id, direction) for message_id, direction, _ in await store.verdicts(ROOM)] == [
            (question, "input")]
