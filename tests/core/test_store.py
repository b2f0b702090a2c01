"""The storage contract, run against every implementation; then SQLite's own promises.

PostgreSQL's cases need a server (see tests/core/postgres_server.py); its own
promises are in test_store_postgres.py."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import time
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from bot.messages import ConversationKey, StoredMessage, Verdict, WordRule
from bot.store import MemoryStore, SqliteStore, Store
from bot.store.group_commit import MAX_BATCH
from bot.store.sqlite import MIGRATIONS, SchemaTooNewError
from bot.store.sqlite_threads import LATER_S

pytestmark = pytest.mark.asyncio

ROOM = ConversationKey("discord", "general")
THREAD = ConversationKey("discord", "general", "t1")
OTHER_THREAD = ConversationKey("discord", "general", "t2")
ELSEWHERE = ConversationKey("telegram", "general")
TASKS = 50
MESSAGES_PER_TASK = 20


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "hearth.db"


async def add_texts(store: Store, key: ConversationKey, *texts: str) -> list[int]:
    ids = [await store.add_message(key, "user", text) for text in texts]
    assert None not in ids
    return [i for i in ids if i is not None]


async def texts(store: Store, key: ConversationKey, limit: int = 200) -> list[str]:
    return [message.text for message in await store.history(key, limit)]


def pragma(path: Path, name: str) -> object:
    """Read a PRAGMA through a separate, plain sqlite3 connection."""
    with closing(sqlite3.connect(path)) as db:
        return db.execute(f"PRAGMA {name}").fetchone()[0]


# The contract: every implementation.


async def test_history_is_oldest_first(store: Store) -> None:
    await add_texts(store, ROOM, "a", "b", "c")
    assert await texts(store, ROOM) == ["a", "b", "c"]


async def test_history_keeps_the_newest_within_limit(store: Store) -> None:
    await add_texts(store, ROOM, "a", "b", "c", "d")
    assert await texts(store, ROOM, limit=2) == ["c", "d"]


async def test_history_with_limit_zero_is_empty(store: Store) -> None:
    await add_texts(store, ROOM, "a")
    assert await store.history(ROOM, 0) == []


async def test_ids_increase(store: Store) -> None:
    ids = await add_texts(store, ROOM, "a", "b", "c")
    assert ids == sorted(ids)
    assert len(set(ids)) == 3


async def test_stored_message_keeps_every_field(store: Store) -> None:
    before = time.time()
    new_id = await store.add_message(
        ROOM, "assistant", "hi", author_id="42", author_name="Ann",
        platform_message_id="p1", prompt_tokens=10, cached_tokens=4, reply_tokens=3,
    )
    [message] = await store.history(ROOM)
    assert (message.id, message.role, message.text) == (new_id, "assistant", "hi")
    assert (message.author_id, message.author_name, message.platform_message_id) == (
        "42", "Ann", "p1")
    assert (message.prompt_tokens, message.cached_tokens, message.reply_tokens) == (10, 4, 3)
    assert before <= message.created_at <= time.time()


async def test_system_messages_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="system"):
        await store.add_message(ROOM, "system", "be nice")
    assert await store.message_count() == 0


async def test_duplicate_platform_id_is_stored_once(store: Store) -> None:
    first = await store.add_message(ROOM, "user", "hi", platform_message_id="p1")
    again = await store.add_message(ROOM, "user", "hi", platform_message_id="p1")
    assert first is not None
    assert again is None
    assert await texts(store, ROOM) == ["hi"]


async def test_same_platform_id_in_another_conversation_is_stored(store: Store) -> None:
    await store.add_message(ROOM, "user", "hi", platform_message_id="p1")
    assert await store.add_message(THREAD, "user", "hi", platform_message_id="p1") is not None
    assert await store.message_count() == 2


async def test_messages_without_platform_id_never_collide(store: Store) -> None:
    await add_texts(store, ROOM, "same", "same", "same")
    assert await texts(store, ROOM) == ["same", "same", "same"]


async def test_context_floor_hides_older_messages(store: Store) -> None:
    _, second, _ = await add_texts(store, ROOM, "a", "b", "c")
    await store.set_context_floor(ROOM, second)
    assert await texts(store, ROOM) == ["b", "c"]
    assert await store.message_count() == 3


async def test_context_floor_of_a_new_conversation(store: Store) -> None:
    await store.set_context_floor(ROOM, 10**9)
    await add_texts(store, ROOM, "a")
    assert await store.history(ROOM) == []


async def test_reset_deletes_and_counts(store: Store) -> None:
    await add_texts(store, ROOM, "a", "b")
    assert await store.reset(ROOM) == 2
    assert await store.history(ROOM) == []
    assert await store.message_count() == 0


async def test_reset_clears_the_context_floor(store: Store) -> None:
    await store.set_context_floor(ROOM, 10**9)
    await store.reset(ROOM)
    await add_texts(store, ROOM, "fresh")
    assert await texts(store, ROOM) == ["fresh"]


async def test_reset_leaves_other_threads_alone(store: Store) -> None:
    await add_texts(store, ROOM, "room")
    await add_texts(store, THREAD, "thread")
    await add_texts(store, OTHER_THREAD, "other")
    assert await store.reset(THREAD) == 1
    assert await texts(store, ROOM) == ["room"]
    assert await texts(store, OTHER_THREAD) == ["other"]


async def test_reset_of_unknown_conversation_is_zero(store: Store) -> None:
    assert await store.reset(ROOM) == 0


async def test_ids_are_not_reused_after_reset(store: Store) -> None:
    [old] = await add_texts(store, ROOM, "a")
    await store.reset(ROOM)
    [new] = await add_texts(store, ROOM, "b")
    assert new > old


async def test_unknown_conversation_is_empty(store: Store) -> None:
    assert await store.history(ROOM) == []
    assert await store.verdicts(ROOM) == []
    assert await store.get_channel_persona(ROOM) is None


async def test_channel_persona_set_and_reset(store: Store) -> None:
    await store.set_channel_persona(ROOM, "pirate")
    assert await store.get_channel_persona(ROOM) == "pirate"
    await store.set_channel_persona(ROOM, None)
    assert await store.get_channel_persona(ROOM) is None


async def test_channel_persona_is_shared_by_threads(store: Store) -> None:
    await store.set_channel_persona(THREAD, "pirate")
    assert await store.get_channel_persona(ROOM) == "pirate"
    assert await store.get_channel_persona(OTHER_THREAD) == "pirate"


async def test_channel_persona_is_per_platform(store: Store) -> None:
    await store.set_channel_persona(ROOM, "pirate")
    assert await store.get_channel_persona(ELSEWHERE) is None


async def test_settings_upsert(store: Store) -> None:
    assert await store.get_setting("model") is None
    await store.set_setting("model", "a")
    await store.set_setting("model", "b")
    assert await store.get_setting("model") == "b"


async def test_verdicts_round_trip(store: Store) -> None:
    [message_id] = await add_texts(store, ROOM, "bad")
    flagged = Verdict(True, "classifier", {"hate": True, "violence": False},
                      {"hate": 0.97, "violence": 0.125}, "block")
    first = await store.add_verdict(ROOM, message_id, "in", flagged)
    second = await store.add_verdict(ROOM, None, "out", Verdict(False))
    assert second > first
    assert await store.verdicts(ROOM) == [
        (message_id, "in", flagged), (None, "out", Verdict(False))]


async def test_verdicts_are_per_conversation(store: Store) -> None:
    await store.add_verdict(ROOM, None, "in", Verdict(False))
    assert await store.verdicts(THREAD) == []


async def test_verdict_for_unknown_message_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="12345"):
        await store.add_verdict(ROOM, 12345, "in", Verdict(False))
    assert await store.verdicts(ROOM) == []


async def test_reset_keeps_verdicts_detached(store: Store) -> None:
    [message_id] = await add_texts(store, ROOM, "bad")
    await store.add_verdict(ROOM, message_id, "in", Verdict(True))
    await store.reset(ROOM)
    assert await store.verdicts(ROOM) == [(None, "in", Verdict(True))]


async def test_message_count_spans_conversations(store: Store) -> None:
    await add_texts(store, ROOM, "a", "b")
    await add_texts(store, THREAD, "c")
    await add_texts(store, ELSEWHERE, "d")
    assert await store.message_count() == 4


async def test_closed_store_refuses_work(store: Store) -> None:
    await store.close()
    with pytest.raises(RuntimeError):
        await store.add_message(ROOM, "user", "hi")
    with pytest.raises(RuntimeError):
        await store.history(ROOM)


async def test_concurrent_tasks_all_succeed(store: Store) -> None:
    async def writer(n: int) -> None:
        key = ConversationKey("discord", f"c{n % 5}", f"t{n % 3}")
        for i in range(MESSAGES_PER_TASK):
            assert await store.add_message(key, "user", f"{n}-{i}", platform_message_id=f"{n}-{i}")
            await store.history(key, 5)

    await asyncio.gather(*(writer(n) for n in range(TASKS)))
    assert await store.message_count() == TASKS * MESSAGES_PER_TASK


async def test_concurrent_duplicate_deliveries_store_once(store: Store) -> None:
    ids = await asyncio.gather(*(
        store.add_message(ROOM, "user", "hi", platform_message_id="p1") for _ in range(TASKS)))
    assert sum(i is not None for i in ids) == 1
    assert await store.message_count() == 1


async def test_memory_store_closes_on_leaving_its_block() -> None:
    async with MemoryStore() as store:
        await add_texts(store, ROOM, "a")
    with pytest.raises(RuntimeError):
        await store.message_count()


# Recent activity: what a platform reads to catch up after a gap.


async def test_recent_conversations_name_the_newest_user_message_most_recent_first(store: Store) -> None:
    await store.add_message(ROOM, "user", "a", platform_message_id="101")
    await store.add_message(THREAD, "user", "b", platform_message_id="201")
    await store.add_message(ROOM, "user", "c", platform_message_id="102")
    await store.add_message(ROOM, "assistant", "reply", platform_message_id="103")  # not a user's
    await store.add_message(ELSEWHERE, "user", "d", platform_message_id="301")  # another platform

    assert await store.recent_conversations("discord", time.time() - 60) == [(ROOM, "102"), (THREAD, "201")]


async def test_recent_conversations_leave_out_older_ones_and_keep_to_the_limit(store: Store) -> None:
    await store.add_message(ROOM, "user", "a", platform_message_id="101")
    since = time.time() + 60  # everything stored is older

    assert await store.recent_conversations("discord", since) == []
    await store.add_message(THREAD, "user", "b", platform_message_id="201")
    assert await store.recent_conversations("discord", 0.0, limit=1) == [(THREAD, "201")]
    assert await store.recent_conversations("discord", 0.0, limit=0) == []


async def test_channels_with_a_flag_are_listed_per_platform(store: Store) -> None:
    await store.set_channel_flag(THREAD, "answer_all", "1")  # the channel's flag, set from a thread
    await store.set_channel_flag(ConversationKey("discord", "aaa"), "answer_all", "1")
    await store.set_channel_flag(ConversationKey("discord", "bbb"), "other", "1")
    await store.set_channel_flag(ELSEWHERE, "answer_all", "1")

    assert await store.channels_with_flag("discord", "answer_all") == ["aaa", "general"]
    await store.set_channel_flag(ROOM, "answer_all", None)
    assert await store.channels_with_flag("discord", "answer_all") == ["aaa"]


# SQLite only.


async def test_data_survives_reopening(db_path: Path) -> None:
    async with SqliteStore(db_path) as store:
        _, second = await add_texts(store, THREAD, "a", "b")
        await store.set_context_floor(THREAD, second)
        await store.set_channel_persona(ROOM, "pirate")
        await store.set_setting("model", "small")
        await store.add_verdict(THREAD, second, "in", Verdict(True, "words", {"hate": True}))
    async with SqliteStore(db_path) as store:
        assert await texts(store, THREAD) == ["b"]
        assert await store.message_count() == 2
        assert await store.get_channel_persona(OTHER_THREAD) == "pirate"
        assert await store.get_setting("model") == "small"
        assert await store.verdicts(THREAD) == [
            (second, "in", Verdict(True, "words", {"hate": True}))]


async def test_open_creates_the_directory_and_turns_on_wal(db_path: Path) -> None:
    async with SqliteStore(db_path):
        assert pragma(db_path, "journal_mode") == "wal"


async def test_schema_version_counts_migrations(db_path: Path) -> None:
    async with SqliteStore(db_path):
        pass
    assert pragma(db_path, "user_version") == len(MIGRATIONS)


async def test_reopening_applies_only_missing_migrations(db_path: Path) -> None:
    # Counts its own runs: a migration run twice would leave "2".
    counter = ("INSERT INTO global_settings (name, value) VALUES ('runs', '1')\n"
               "ON CONFLICT (name) DO UPDATE SET value = value + 1;")
    async with SqliteStore(db_path) as store:
        await add_texts(store, ROOM, "kept")
    for _ in range(2):
        async with SqliteStore(db_path, migrations=(*MIGRATIONS, counter)) as store:
            assert await store.get_setting("runs") == "1"
            assert await texts(store, ROOM) == ["kept"]
    assert pragma(db_path, "user_version") == len(MIGRATIONS) + 1


async def test_failed_migration_changes_nothing(db_path: Path) -> None:
    broken = "CREATE TABLE extra (x INTEGER);\nINSERT INTO missing VALUES (1);"
    store = SqliteStore(db_path, migrations=(*MIGRATIONS, broken))
    with pytest.raises(sqlite3.OperationalError):
        await store.open()
    with pytest.raises(RuntimeError):  # the failed open left nothing half open
        await store.message_count()
    assert pragma(db_path, "user_version") == 0
    async with SqliteStore(db_path) as store:
        assert await store.message_count() == 0


async def test_newer_schema_is_refused(db_path: Path) -> None:
    async with SqliteStore(db_path, migrations=(*MIGRATIONS, "SELECT 1;")):
        pass
    with pytest.raises(SchemaTooNewError) as raised:
        await SqliteStore(db_path).open()
    assert (raised.value.found, raised.value.supported) == (len(MIGRATIONS) + 1, len(MIGRATIONS))


async def test_open_and_close_are_idempotent(db_path: Path) -> None:
    store = SqliteStore(db_path)
    await store.open()
    await store.open()
    await add_texts(store, ROOM, "a")
    await store.close()
    await store.close()
    await store.open()
    assert await texts(store, ROOM) == ["a"]
    await store.close()


async def test_close_waits_for_running_writes(db_path: Path) -> None:
    store = SqliteStore(db_path)
    await store.open()
    writes = [asyncio.create_task(store.add_message(ROOM, "user", f"{n}")) for n in range(10)]
    await asyncio.sleep(0)
    await store.close()
    outcomes = await asyncio.gather(*writes, return_exceptions=True)
    stored = sum(isinstance(outcome, int) for outcome in outcomes)
    assert all(isinstance(o, int | RuntimeError) for o in outcomes)
    async with SqliteStore(db_path) as store:
        assert await store.message_count() == stored


async def test_reply_follows_the_message_it_answers(store: Store) -> None:
    first = await store.add_message(ROOM, "user", "a", platform_message_id="1")
    await store.add_message(ROOM, "user", "b", platform_message_id="2")
    await store.add_message(ROOM, "assistant", "reply to a", reply_to=first)

    history = await store.history(ROOM)

    assert [m.text for m in history] == ["a", "reply to a", "b"]
    assert history[1].reply_to == first


async def test_context_floor_keeps_replies_of_kept_turns(store: Store) -> None:
    await store.add_message(ROOM, "user", "old")
    kept = await store.add_message(ROOM, "user", "kept")
    await store.add_message(ROOM, "user", "newer")
    await store.add_message(ROOM, "assistant", "reply to kept", reply_to=kept)
    assert kept is not None

    await store.set_context_floor(ROOM, kept)

    assert [m.text for m in await store.history(ROOM)] == ["kept", "reply to kept", "newer"]


async def test_channel_flags_are_per_channel_and_clearable(store: Store) -> None:
    await store.set_channel_flag(THREAD, "answer_all", "1")

    assert await store.get_channel_flag(ROOM, "answer_all") == "1"  # threads share their channel's
    assert await store.get_channel_flag(ELSEWHERE, "answer_all") is None
    await store.set_channel_flag(ROOM, "answer_all", None)
    assert await store.get_channel_flag(ROOM, "answer_all") is None


async def test_moderation_words_add_replace_remove(store: Store) -> None:
    await store.add_word(WordRule("global", "darn", "block", "harassment"))
    await store.add_word(WordRule("telegram:42", "heck", "allow"))
    await store.add_word(WordRule("global", "darn", "block", "hate"))

    assert await store.words() == [
        WordRule("global", "darn", "block", "hate"),
        WordRule("telegram:42", "heck", "allow", "harassment"),
    ]
    assert await store.remove_word("global", "darn")
    assert not await store.remove_word("global", "darn")
    assert [w.word for w in await store.words()] == ["heck"]


async def write_many(store: SqliteStore) -> None:
    # About 7 MB: past SQLite's default auto-checkpoint of 1,000 pages.
    for n in range(300):
        await store.add_message(ROOM, "user", f"message {n} " * 2000)


async def test_commits_never_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "wal.sqlite3"
    async with SqliteStore(path, checkpoint_interval=3600) as store:
        before = path.stat().st_size
        await write_many(store)
        assert path.stat().st_size == before, "a commit checkpointed (wal_autocheckpoint must be 0)"


async def test_the_wal_is_checkpointed_in_the_background(tmp_path: Path) -> None:
    path = tmp_path / "wal.sqlite3"
    async with SqliteStore(path, checkpoint_interval=0.05) as store:
        before = path.stat().st_size
        await write_many(store)
        for _ in range(100):  # bounded: about 5 s at most
            if path.stat().st_size > before:
                break
            await asyncio.sleep(0.05)
        assert path.stat().st_size > before, "the background checkpoint never ran"


async def test_history_leaves_out_flagged_user_messages(store: Store) -> None:
    kept = await store.add_message(ROOM, "user", "hello")
    flagged = await store.add_message(ROOM, "user", "something vile")
    await store.add_verdict(ROOM, kept, "input", Verdict(flagged=False))
    await store.add_verdict(ROOM, flagged, "input", Verdict(flagged=True, layer="wordlist"))

    assert [m.text for m in await store.history(ROOM)] == ["hello"]
    assert await store.message_count() == 2, "the flagged message stays stored, for the record"


async def test_a_new_conversations_first_messages_keep_their_order(store: Store) -> None:
    """Three tasks store in turn into a conversation not seen before: ids follow the calls."""
    key = ConversationKey("telegram", "brand-new")
    ids = await asyncio.gather(*(store.add_message(key, "user", text) for text in "abc"))

    assert [m.text for m in await store.history(key)] == ["a", "b", "c"]
    assert ids == sorted(ids)


# Claims: several processes sharing one store never take the same pending message.


async def test_claim_takes_pending_user_messages_oldest_first(store: Store) -> None:
    first, second = await add_texts(store, ROOM, "a", "b")
    await add_texts(store, THREAD, "c")
    await store.add_message(ROOM, "assistant", "reply to a", reply_to=first)
    await store.set_status(second, "answered")

    claimed = await store.claim_pending(since=0, owner="one")

    assert [(p.text, p.key) for p in claimed] == [("a", ROOM), ("c", THREAD)]
    assert claimed[0].id == first


async def test_claim_keeps_what_answering_later_needs(store: Store) -> None:
    await store.add_message(ROOM, "user", "hi", author_id="42", author_name="Ann",
                            platform_message_id="p1", meta={"direct": True, "channel_name": "dm"})

    [claimed] = await store.claim_pending(since=0, owner="one")

    assert (claimed.author_id, claimed.author_name, claimed.platform_message_id) == ("42", "Ann", "p1")
    assert (claimed.is_direct, claimed.channel_name) == (True, "dm")


async def test_claim_leaves_out_messages_older_than_since(store: Store) -> None:
    await add_texts(store, ROOM, "old")
    assert await store.claim_pending(since=time.time() + 60, owner="one") == []


async def test_a_claimed_message_is_not_claimed_by_another_owner(store: Store) -> None:
    await add_texts(store, ROOM, "a", "b")
    assert len(await store.claim_pending(since=0, owner="one")) == 2
    assert await store.claim_pending(since=0, owner="two") == []


async def test_an_owner_takes_back_its_own_claims(store: Store) -> None:
    """A restarted process (the same owner) answers what it had claimed before it stopped."""
    await add_texts(store, ROOM, "a")
    first = await store.claim_pending(since=0, owner="one")
    assert await store.claim_pending(since=0, owner="one") == first


async def test_a_message_stored_with_an_owner_is_already_claimed(store: Store) -> None:
    await store.add_message(ROOM, "user", "live", owner="one")

    assert await store.claim_pending(since=0, owner="two") == []
    assert [p.text for p in await store.claim_pending(since=0, owner="one")] == ["live"]


async def test_a_claimed_message_stays_pending_until_it_ends(store: Store) -> None:
    [message_id] = await add_texts(store, ROOM, "a")
    await store.claim_pending(since=0, owner="one")

    assert [p.id for p in await store.pending(since=0)] == [message_id]
    assert await texts(store, ROOM) == ["a"]
    await store.set_status(message_id, "answered")
    assert await store.claim_pending(since=0, owner="one") == []


async def test_concurrent_claims_take_each_message_once(store: Store) -> None:
    for n in range(TASKS):
        await store.add_message(ConversationKey("discord", f"c{n % 7}"), "user", f"{n}")

    claims = await asyncio.gather(*(store.claim_pending(since=0, owner=f"o{n}") for n in range(4)))

    ids = [p.id for claim in claims for p in claim]
    assert len(ids) == len(set(ids)) == TASKS


async def test_shown_parts_come_back_with_the_pending_message(store: Store) -> None:
    message_id = await store.add_message(ROOM, "user", "hi", meta={"direct": True, "channel_name": "dm"})
    assert message_id is not None

    await store.note_shown(message_id, ["m1", "m2"])

    [pending] = await store.pending(since=0)
    assert (pending.shown, pending.is_direct, pending.channel_name) == (("m1", "m2"), True, "dm")
    [claimed] = await store.claim_pending(since=0, owner="one")
    assert claimed.shown == ("m1", "m2")


async def test_a_shown_part_is_noted_ahead_of_a_flood_of_incoming_messages(db_path: Path) -> None:
    """The gap between a reply's first part reaching the platform and its id being noted
    is what a crash can turn into a part no restart finds: it must not wait for a queue
    of writes (seen: 6 of 10 first parts lost that way during a 400-message flood).
    Nobody waits for the note, so the file itself is read, by another connection, as
    each flood write returns: the note is there after at most two transactions' worth."""
    async with SqliteStore(db_path) as store:
        message_id = await store.add_message(ROOM, "user", "answer me")
        assert message_id is not None
        flood = [asyncio.ensure_future(store.add_message(ELSEWHERE, "user", f"flood {n}"))
                 for n in range(2000)]
        await asyncio.sleep(0)  # the flood is queued

        await store.note_shown(message_id, ["first-part"])
        await store.note_shown(message_id, ["first-part", "second-part"])  # the later one is kept

        with closing(sqlite3.connect(db_path)) as reader:
            returned_before_noted = 0
            for task in flood:
                await task
                if _noted(reader, message_id):
                    break
                returned_before_noted += 1
            await asyncio.gather(*flood)
            assert _noted(reader, message_id) == ["first-part", "second-part"]
        assert returned_before_noted <= 2 * MAX_BATCH < len(flood) // 2
        [pending, *_] = await store.pending(since=0)
        assert pending.shown == ("first-part", "second-part")


async def test_a_note_is_stored_by_itself_soon_when_no_write_follows(db_path: Path) -> None:
    async with SqliteStore(db_path) as store:
        message_id = await store.add_message(ROOM, "user", "answer me")
        assert message_id is not None
        await store.note_shown(message_id, ["only-part"])
        with closing(sqlite3.connect(db_path)) as reader:
            for _ in range(200):  # 2 s at most: it is due within NOTE_WITHIN_S
                if _noted(reader, message_id):
                    break
                await asyncio.sleep(0.01)
            assert _noted(reader, message_id) == ["only-part"]


def _noted(reader: sqlite3.Connection, message_id: int) -> list[str] | None:
    [(shown,)] = reader.execute("SELECT json_extract(meta, '$.shown') FROM messages WHERE id = ?",
                                (message_id,)).fetchall()
    return None if shown is None else list(json.loads(shown))


async def test_a_reply_stored_with_its_questions_status_writes_both_at_once(store: Store) -> None:
    """Two writes could be cut between (shutdown past its grace, kill -9): a shown,
    stored answer whose question stayed pending was answered again after the restart."""
    question = await store.add_message(ROOM, "user", "are you there?")
    cut = await store.add_message(ROOM, "user", "and now?")
    assert question is not None and cut is not None

    await store.add_message(ROOM, "assistant", "I am.", reply_to=question, question_status="answered")
    await store.add_message(ROOM, "assistant", "I w", reply_to=cut, status="interrupted")

    assert [p.id for p in await store.pending(since=0)] == [cut]


async def test_an_undelivered_reply_waits_for_its_owner_with_its_parts_and_stays_in_history(
    store: Store,
) -> None:
    question = await store.add_message(ROOM, "user", "hi", platform_message_id="41", owner="a")
    assert question is not None
    reply = await store.add_message(
        ROOM, "assistant", "hello there", reply_to=question, status="undelivered", owner="a",
        platform_message_id="p1", meta={"deliver": "💭 hello there"}, question_status="answered",
    )
    assert reply is not None
    await store.note_shown(reply, ["p1", "p2"])
    await store.add_message(ELSEWHERE, "assistant", "not mine", status="undelivered", owner="b")

    [waiting] = await store.undelivered(0.0, "a")
    assert (waiting.id, waiting.key, waiting.text, waiting.shown, waiting.reply_to) == (
        reply, ROOM, "💭 hello there", ("p1", "p2"), "41")
    assert [m.text for m in await store.history(ROOM)] == ["hi", "hello there"], "the model sees it"
    assert await store.undelivered(time.time() + 60, "a") == []


async def test_a_delivered_reply_is_answered_once_and_keeps_its_first_part(store: Store) -> None:
    reply = await store.add_message(ROOM, "assistant", "late", status="undelivered", owner="a")
    assert reply is not None
    await store.mark_delivered(reply, "p9")
    await store.mark_delivered(reply, "p10")  # once answered, nothing changes
    assert await store.undelivered(0.0, "a") == []
    [stored] = await store.history(ROOM)
    assert (stored.status, stored.platform_message_id) == ("answered", "p9")


async def test_undelivered_replies_past_the_window_are_skipped(store: Store) -> None:
    await store.add_message(ROOM, "assistant", "too late", status="undelivered", owner="a")
    assert await store.expire_undelivered(time.time() + 1) == 1
    assert await store.undelivered(0.0, "a") == []
    assert await store.history(ROOM) == [], "never shown: it leaves the prompt"


async def test_a_message_from_a_row_is_the_message_its_fields_make() -> None:
    row = (7, "assistant", "u1", "Alice", "hi", 12.5, "p7", 3, 1, 2, 6, "undelivered")
    message = StoredMessage.from_row(row)
    assert message == StoredMessage(*row) and hash(message) == hash(StoredMessage(*row))
    assert message.turn == 6
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.text = "changed"  # type: ignore[misc]
    with pytest.raises(ValueError, match="12 fields"):
        StoredMessage.from_row(row[:-1])


async def test_a_channels_settings_are_read_in_one_query_and_remembered(db_path: Path) -> None:
    async with SqliteStore(db_path) as store:
        await store.set_channel_persona(ROOM, "You are terse.")
        await store.set_channel_flag(ROOM, "answer_all", "1")
        await store.set_channel_flag(ROOM, "quota_user_per_minute", "3")
    async with SqliteStore(db_path) as store:
        assert await store.get_channel_flag(THREAD, "answer_all") == "1"  # the one read
        with closing(sqlite3.connect(db_path)) as other:  # nobody else writes them: not read again
            other.execute("DELETE FROM channel_flags")
            other.execute("DELETE FROM channel_settings")
            other.commit()
        assert await store.get_channel_persona(ROOM) == "You are terse."
        assert await store.get_channel_flag(ROOM, "quota_user_per_minute") == "3"
        assert await store.get_channel_flag(ROOM, "never_set") is None


async def test_a_setting_written_while_its_channel_is_read_is_not_lost(db_path: Path) -> None:
    async with SqliteStore(db_path) as store:
        await store.set_channel_flag(ROOM, "answer_all", "0")
    async with SqliteStore(db_path) as store:
        fetch, written = store._fetch, asyncio.Event()

        async def read_before_delivered_after(sql: str, params: Sequence[Any]) -> list[Any]:
            rows = await fetch(sql, params)  # read before the write below…
            await written.wait()  # …and handed back after it
            return rows

        store._fetch = read_before_delivered_after  # type: ignore[method-assign]
        read = asyncio.ensure_future(store.get_channel_flag(ROOM, "answer_all"))
        await asyncio.sleep(0.05)
        await store.set_channel_flag(ROOM, "answer_all", "1")
        written.set()
        assert await read in ("0", "1")  # it overlapped the write: either
        store._fetch = fetch  # type: ignore[method-assign]
        assert await store.get_channel_flag(ROOM, "answer_all") == "1"
        await store.set_channel_persona(ROOM, None)
        assert await store.get_channel_persona(ROOM) is None


async def test_new_channels_settings_are_read_once_for_all_channels(db_path: Path) -> None:
    async with SqliteStore(db_path) as store:
        await store.set_channel_persona(ROOM, "You are terse.")
    async with SqliteStore(db_path) as store:
        fetch, reads = store._fetch, []

        async def counted(sql: str, params: Sequence[Any]) -> list[Any]:
            reads.append(sql)
            return await fetch(sql, params)

        store._fetch = counted  # type: ignore[method-assign]
        keys = [ConversationKey("discord", f"new-{n}") for n in range(100)]
        personas = await asyncio.gather(*(store.get_channel_persona(key) for key in [*keys, ROOM]))
        assert personas == [None] * 100 + ["You are terse."]
        assert len(reads) == 1

        fresh = ConversationKey("discord", "never-read")
        await store.set_channel_flag(fresh, "answer_all", "1")  # a new channel's first setting
        assert await store.get_channel_flag(fresh, "answer_all") == "1"
        assert len(reads) == 1


async def test_closing_leaves_no_writer_behind_for_a_write_a_running_flush_took(db_path: Path) -> None:
    """A verdict queued while a transaction runs is taken by that flush, its timer still
    set: once the store closed, the timer must not start a writer that waits forever."""
    async with SqliteStore(db_path) as store:
        question = await store.add_message(ROOM, "user", "hi")
        write = asyncio.ensure_future(store.add_message(ROOM, "user", "again"))
        await asyncio.sleep(0)  # its transaction runs on the writer's thread
        await store.log_verdict(ROOM, question, "input", Verdict(False))
        await write
    await asyncio.sleep(LATER_S * 3)
    assert [t for t in asyncio.all_tasks() if t.get_name() == "sqlite-group-commit"] == []


async def test_a_new_database_has_2_kib_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    """Each commit writes whole pages to the WAL: a new file is made with 2 KiB pages. A
    file made with SQLite's 4 KiB ones (by an earlier Hearth) keeps them and works as before."""
    old = tmp_path / "old.sqlite3"
    with closing(sqlite3.connect(old)) as db:
        db.execute("CREATE TABLE made_before (x)")
    key = ConversationKey("telegram", "1")
    for path, expected in ((tmp_path / "new.sqlite3", 2048), (old, 4096)):
        async with SqliteStore(path) as store:
            await store.add_message(key, "user", "hello")
            assert [m.text for m in await store.history(key)] == ["hello"]
        with closing(sqlite3.connect(path)) as db:
            assert db.execute("PRAGMA page_size").fetchone()[0] == expected
