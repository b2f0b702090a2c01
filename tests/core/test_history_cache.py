"""The SQLite store's history windows (`bot.store.history_cache`): whatever this process
and another one write, `history` answers what the file holds."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import get_args

from bot.messages import ConversationKey, MessageStatus, StoredMessage, Verdict
from bot.store import SqliteStore
from bot.store.history_cache import HistoryCache
from bot.store.sqlite_wal import wal_path
from bot.store.statements import SELECT_HISTORY

KEYS = (ConversationKey("discord", "1"), ConversationKey("discord", "2"),
        ConversationKey("telegram", "3", "7"))
AUTHORS = ("ann", "bob", "cy")
STATUSES: tuple[MessageStatus, ...] = get_args(MessageStatus)
LIMITS = (2, 5, 400)  # 400: the pipeline's (twice HEARTH_HISTORY_MESSAGES)
STEPS = 600
FLAGGED = Verdict(flagged=True, categories={"harassment": True}, category_scores={"harassment": 1.0})


def truth(path: Path, key: ConversationKey, limit: int) -> list[StoredMessage]:
    """The history as the file holds it, read by a connection of its own."""
    with closing(sqlite3.connect(path)) as db:
        rows = db.execute(SELECT_HISTORY, (key.platform, key.channel, key.thread or "", limit)).fetchall()
    return [StoredMessage.from_row(row) for row in reversed(rows)]


def ids_in(path: Path, role: str) -> list[int]:
    with closing(sqlite3.connect(path)) as db:
        return [row[0] for row in db.execute("SELECT id FROM messages WHERE role = ?", (role,))]


class Actions:
    """The writes a running Hearth makes, chosen at random."""

    def __init__(self, store: SqliteStore, path: Path, rng: random.Random) -> None:
        self.store, self.path, self.rng = store, path, rng

    def key(self) -> ConversationKey:
        return self.rng.choice(KEYS)

    def some(self, role: str) -> int | None:
        ids = ids_in(self.path, role)
        return self.rng.choice(ids) if ids else None

    async def ask(self) -> None:
        status: MessageStatus | None = self.rng.choice((None, None, None, "unseen", "merged"))
        await self.store.add_message(self.key(), "user", f"q{self.rng.random():.6f}",
                                     author_id=self.rng.choice(AUTHORS), status=status)

    async def answer(self) -> None:
        question = self.some("user")
        if question is None:
            return
        with closing(sqlite3.connect(self.path)) as db:
            platform, channel, thread = db.execute(
                "SELECT c.platform, c.channel, c.thread FROM messages m JOIN conversations c"
                " ON c.id = m.conversation_id WHERE m.id = ?", (question,)).fetchone()
        status: MessageStatus | None = self.rng.choice((None, None, "undelivered"))
        question_status: MessageStatus | None = self.rng.choice(("answered", "merged", None))
        await self.store.add_message(ConversationKey(platform, channel, thread), "assistant", "a",
                                     reply_to=question, status=status, question_status=question_status)

    async def set_status(self) -> None:
        message = self.some(self.rng.choice(("user", "assistant")))
        if message is not None:
            await self.store.set_status(message, self.rng.choice(STATUSES))

    async def deliver(self) -> None:
        message = self.some("assistant")
        if message is not None:
            await self.store.mark_delivered(message, f"p{message}")

    async def floor(self) -> None:
        message = self.some("user")
        if message is not None:
            await self.store.set_context_floor(self.key(), message)

    async def reset(self) -> None:
        await self.store.reset(self.key())

    async def flag(self) -> None:
        message = self.some("user")
        if message is not None:
            await self.store.add_verdict(self.key(), message, "input", FLAGGED)

    async def prune(self) -> None:
        await self.store.prune_messages(time.time() + 1, self.rng.randint(1, 3))

    async def forget(self) -> None:
        await self.store.forget_user("discord", self.rng.choice(AUTHORS))

    async def expire(self) -> None:
        await self.rng.choice((self.store.skip_pending, self.store.expire_undelivered))(time.time() + 1)

    async def cancelled_ask(self) -> None:
        """A caller cancelled while its write waits to commit: the write stands."""
        asking = asyncio.create_task(self.store.add_message(self.key(), "user", "cancelled"))
        await asyncio.sleep(0)
        asking.cancel()
        await asyncio.gather(asking, return_exceptions=True)
        await self.store.verdicts(KEYS[0])  # waits for the queued writes

    async def together(self) -> None:
        """Questions and answers from several tasks at once: one transaction, in call order."""
        await asyncio.gather(*(self.rng.choice((self.ask, self.answer))() for _ in range(6)))

    async def elsewhere(self) -> None:
        """Another process changes the file; this one then stores a message (as every turn
        does before it reads its history)."""
        message = self.some("user")
        with closing(sqlite3.connect(self.path, isolation_level=None)) as db:
            if message is not None and self.rng.random() < 0.5:
                db.execute("DELETE FROM messages WHERE id = ? OR reply_to = ?", (message, message))
            else:
                db.execute("UPDATE messages SET text = text || '!' WHERE role = 'user'")
        await self.ask()


async def test_history_is_what_the_file_holds_through_every_kind_of_write(tmp_path: Path) -> None:
    path = tmp_path / "hearth.db"
    rng = random.Random(20261204)
    async with SqliteStore(path) as store:
        actions = Actions(store, path, rng)
        kinds = [actions.ask] * 6 + [actions.answer] * 5 + [
            actions.set_status, actions.deliver, actions.floor, actions.reset, actions.flag, actions.prune,
            actions.forget, actions.expire, actions.cancelled_ask, actions.together, actions.elsewhere]
        for step in range(STEPS):
            await rng.choice(kinds)()
            for key in KEYS:
                limit = rng.choice(LIMITS)
                assert await store.history(key, limit) == truth(path, key, limit), f"step {step}, {key}"
        assert store._history.hits > STEPS  # the windows were used, not read around


async def test_a_new_conversations_first_turn_reads_nothing_back(tmp_path: Path) -> None:
    path = tmp_path / "hearth.db"
    async with SqliteStore(path) as store:
        question = await store.add_message(KEYS[0], "user", "hello")
        assert [m.id for m in await store.history(KEYS[0], 400)] == [question]
        assert (store._history.hits, store._history.misses) == (1, 0)


async def test_a_write_by_another_process_is_seen_after_the_next_write_here(tmp_path: Path) -> None:
    path = tmp_path / "hearth.db"
    async with SqliteStore(path) as store:
        await store.add_message(KEYS[0], "user", "forget me")
        await store.history(KEYS[0], 400)
        with closing(sqlite3.connect(path, isolation_level=None)) as db:  # `hearth forget`, say
            db.execute("DELETE FROM messages")
        await store.add_message(KEYS[1], "user", "the next turn, in another channel")
        assert await store.history(KEYS[0], 400) == []


def message(message_id: int, reply_to: int | None = None) -> StoredMessage:
    return StoredMessage(message_id, "user" if reply_to is None else "assistant", "", "", "x", 0.0,
                         reply_to=reply_to, status="pending" if reply_to is None else "answered")


def test_a_read_that_a_write_overtook_is_not_kept() -> None:
    cache = HistoryCache()
    with cache.reading(KEYS[0], 10) as fill:
        cache.added(KEYS[0], message(2), new_conversation=False)
        fill([message(1)])  # read before message 2 was committed
    assert cache.get(KEYS[0], 10) is None


def test_a_reply_goes_after_its_question_and_the_oldest_leave_a_full_window() -> None:
    cache = HistoryCache()
    with cache.reading(KEYS[0], 3) as fill:
        fill([message(1), message(2), message(3)])
    cache.added(KEYS[0], message(4, reply_to=2), new_conversation=False)
    kept = cache.get(KEYS[0], 3)
    assert kept is not None
    assert [m.id for m in kept] == [2, 4, 3]
    assert cache.get(KEYS[0], 4) is None  # message 1 left: the window cannot say


def test_windows_are_bounded_by_messages_least_recently_used_first_out() -> None:
    cache = HistoryCache(max_messages=5)
    for n, key in enumerate(KEYS):
        with cache.reading(key, 10) as fill:
            fill([message(10 * n + i) for i in range(2)])
    assert cache.get(KEYS[0], 10) is None  # 6 messages held: the first conversation's went
    assert cache.get(KEYS[1], 10) is not None
    assert cache.get(KEYS[2], 10) is not None


async def test_the_stores_own_wal_truncations_keep_the_windows(tmp_path: Path) -> None:
    path = tmp_path / "hearth.db"
    async with SqliteStore(path, checkpoint_interval=0.05, wal_limit=1) as store:
        await store.add_message(KEYS[0], "user", "before")
        assert len(await store.history(KEYS[0], 400)) == 1
        for _ in range(100):  # past 1 byte: started over at once, truncated once idle (a look or two)
            if wal_path(path).stat().st_size == 0:
                break
            await asyncio.sleep(0.05)
        assert wal_path(path).stat().st_size == 0
        await store.add_message(KEYS[0], "user", "after")
        assert [m.text for m in await store.history(KEYS[0], 400)] == ["before", "after"]
        assert store._history.misses == 0  # SQLite counts a WAL started over as a change elsewhere
