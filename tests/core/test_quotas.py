"""Quotas: rate limits and daily token quotas per user and channel, through the pipeline."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bot import i18n
from bot.app.builder import App
from bot.errors import StoreUnavailableError
from bot.messages import ConversationKey, IncomingMessage, Usage
from bot.quotas import UsageLedger
from bot.quotas.buckets import Buckets
from bot.quotas.ledger import DAY_READ_S
from bot.store import MemoryStore
from engine.fake import FakeEngine
from engine.types import ChatMessage
from tests.conftest import make_settings, open_app
from tests.core.test_backlog import HeldEngine as BacklogEngine
from tests.fakes import RecordingAdapter, message

ROOM = ConversationKey("telegram", "room")
OPERATOR = "4242"  # telegram:4242 is in HEARTH_ADMIN_IDS
RATE_NOTICE = "You are sending messages faster than I can answer"


class HeldEngine(BacklogEngine):
    """Every reply waits for `release`; the prompts' token counts are noted."""

    def __init__(self) -> None:
        super().__init__()
        self.prompt_sizes: list[int] = []

    async def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        tokens = await super().count_tokens(messages)
        self.prompt_sizes.append(tokens)
        return tokens


@asynccontextmanager
async def hearth(tmp_path: Path, engine: FakeEngine, **limits: object) -> AsyncIterator[App]:
    settings = make_settings(tmp_path, admin_ids=f"telegram:{OPERATOR}", **limits)
    async with open_app(settings, engine) as app:
        yield app


async def send_all(app: App, adapter: RecordingAdapter, *messages: IncomingMessage) -> list[bool]:
    """Submit each in turn; whether a task came back for it; then wait for every reply."""
    tasks = [await app.pipeline.submit(m, adapter) for m in messages]
    await asyncio.gather(*(t for t in tasks if t is not None))
    return [t is not None for t in tasks]


def in_room(text: str, n: int, author: str = "u1", **kw: bool) -> IncomingMessage:
    return message(text, f"{author}-{n}", author=author, direct=False, **kw)


async def test_a_user_over_the_burst_is_refused_told_once_and_never_queued(
    tmp_path: Path, engine: FakeEngine
) -> None:
    adapter = RecordingAdapter()
    async with hearth(tmp_path, engine, user_messages_per_minute=1, user_burst=2) as app:
        handed_on = await send_all(app, adapter, *(in_room(f"m{n}", n) for n in range(6)))
        history = [m.text for m in await app.store.history(ROOM) if m.role == "user"]

    assert handed_on == [True, True, True, False, False, False], "two answers, then one notice, then silence"
    assert history == ["m0", "m1"], "refused messages never enter a prompt"
    assert [p[-1].content for p in engine.prompts] == ["⟦user-u1⟧: m0", "⟦user-u1⟧: m1"]
    notices = [t for t in adapter.texts() if t.startswith(RATE_NOTICE)]
    assert notices == [i18n.text("quota_rate_user", "en", seconds=60, limit="1")]


async def test_refused_messages_are_stored_and_marked_limited(tmp_path: Path, engine: FakeEngine) -> None:
    async with hearth(tmp_path, engine, user_messages_per_minute=1, user_burst=1) as app:
        await send_all(app, RecordingAdapter(), in_room("kept", 0))
        await send_all(app, RecordingAdapter(), in_room("refused", 1))
        assert await app.store.message_count() == 3, "both user messages and one reply"
        pending = await app.store.pending(0)

    assert pending == [], "a limited message is not left to be answered after a restart"


async def test_a_flooding_user_leaves_the_channel_to_the_others(tmp_path: Path, engine: FakeEngine) -> None:
    adapter = RecordingAdapter()
    limits = {"user_messages_per_minute": 1, "user_burst": 2, "channel_messages_per_minute": 1,
              "channel_burst": 3}
    async with hearth(tmp_path, engine, **limits) as app:
        await send_all(app, adapter, *(in_room(f"flood {n}", n) for n in range(10)))
        [taken] = await send_all(app, adapter, in_room("hello", 0, author="u2"))

    assert taken, "refused messages took nothing from the channel's budget"
    assert "echo: ⟦user-u2⟧: hello" in adapter.texts()


async def test_the_channel_limit_counts_every_user(tmp_path: Path, engine: FakeEngine) -> None:
    adapter = RecordingAdapter()
    async with hearth(tmp_path, engine, channel_messages_per_minute=1, channel_burst=2) as app:
        handed_on = await send_all(app, adapter, *(in_room("hi", 0, author=f"u{n}") for n in range(4)))

    assert handed_on == [True, True, True, True], "two answers, and a notice to each refused author"
    assert adapter.texts().count(i18n.text("quota_rate_channel", "en", seconds=60, limit="1")) == 2


async def test_admins_are_exempt_unless_told_otherwise(tmp_path: Path, engine: FakeEngine) -> None:
    limits = {"user_messages_per_minute": 1, "user_burst": 1}
    by_operator = [in_room("hi", n, author=OPERATOR) for n in range(3)]
    by_platform_admin = [in_room("hi", n, author="mod", admin=True) for n in range(3)]
    async with hearth(tmp_path / "a", engine, **limits) as app:
        exempt = await send_all(app, RecordingAdapter(), *by_operator)
        platform_admin = await send_all(app, RecordingAdapter(), *by_platform_admin)
    async with hearth(tmp_path / "b", engine, quota_admins_exempt=False, **limits) as app:
        counted = await send_all(app, RecordingAdapter(), *by_operator)

    assert exempt == platform_admin == [True, True, True]
    assert counted == [True, True, False]


async def test_the_notice_is_in_the_users_language(tmp_path: Path, engine: FakeEngine) -> None:
    adapter = RecordingAdapter()
    async with hearth(tmp_path, engine, user_messages_per_minute=30, user_burst=1) as app:
        await send_all(app, adapter, in_room("你好", 0))
        await send_all(app, adapter, in_room("在吗？", 1))

    assert adapter.texts()[-1] == i18n.text("quota_rate_user", "zh", seconds=2, limit="30")


async def test_a_daily_token_quota_holds_across_a_restart(tmp_path: Path, engine: FakeEngine) -> None:
    adapter = RecordingAdapter()
    async with hearth(tmp_path, engine, user_daily_tokens=5) as app:
        await send_all(app, adapter, in_room("spend it all", 0))
        refused = await send_all(app, adapter, in_room("and more", 1), in_room("and more", 2))
    async with hearth(tmp_path, engine, user_daily_tokens=5) as app:
        after_restart = await send_all(app, adapter, in_room("hello again", 3))
        other_user = await send_all(app, adapter, in_room("hi", 0, author="u2"))

    assert refused == [True, False], "told once, then silence"
    assert after_restart == [True], "still refused (and told again: a new process)"
    assert other_user == [True]
    assert adapter.texts()[1:3] == [i18n.text("quota_tokens_user", "en", limit="5")] * 2


async def test_a_channel_token_quota_refuses_everyone_there(tmp_path: Path, engine: FakeEngine) -> None:
    adapter = RecordingAdapter()
    async with hearth(tmp_path, engine, channel_daily_tokens=5) as app:
        await send_all(app, adapter, in_room("spend it all", 0))
        await send_all(app, adapter, in_room("hi", 0, author="u2"))
        elsewhere = await send_all(app, adapter, message("hi", "x", ConversationKey("telegram", "other")))

    assert adapter.texts()[1] == i18n.text("quota_tokens_channel", "en", limit="5")
    assert elsewhere == [True]


async def test_usage_is_counted_per_author_and_channel(tmp_path: Path, engine: FakeEngine) -> None:
    async with hearth(tmp_path, engine, user_messages_per_minute=1, user_burst=1) as app:
        await send_all(app, RecordingAdapter(), in_room("hello", 0), in_room("refused", 1))
        await app.quotas.ledger.flush()
        [row] = await app.store.usage("0000-00-00")

    assert (row.platform, row.channel, row.author_id) == ("telegram", "room", "u1")
    assert row.author_name == "user-u1"
    assert (row.messages, row.refused) == (1, 1)
    assert row.reply_tokens > 0 and row.prompt_tokens > 0 and row.tokens > 0


async def test_concurrent_replies_overshoot_a_daily_quota_by_at_most_one_reservation(tmp_path: Path) -> None:
    """Thirty messages from one user in thirty chats at once, each reply held until all
    are in flight: counted after the fact, every one was generated (2.9x the quota seen)."""
    engine, adapter = HeldEngine(), RecordingAdapter()
    quota, reply_cap = 300, 20
    async with hearth(tmp_path, engine, user_daily_tokens=quota, max_reply_tokens=reply_cap) as app:
        rooms = [message(f"tell me a story number {n}", f"m{n}", ConversationKey("telegram", f"room{n}"))
                 for n in range(30)]
        tasks = [t for m in rooms if (t := await app.pipeline.submit(m, adapter)) is not None]
        await asyncio.sleep(0.2)  # every reply that may start has started, and holds its reservation
        engine.release.set()
        await asyncio.gather(*tasks)
        await app.quotas.ledger.flush()
        spent = sum(row.tokens for row in await app.store.usage("0000-00-00"))

    one_reservation = max(engine.prompt_sizes) + reply_cap
    assert quota <= spent <= quota + one_reservation, (spent, one_reservation)
    assert engine.started < len(rooms), "the rest were refused before generating"
    assert i18n.text("quota_tokens_user", "en", limit="300") in adapter.texts()


# --- the parts on their own ---------------------------------------------------------


async def test_a_bucket_takes_the_burst_then_refuses() -> None:
    buckets = Buckets()
    for _ in range(3):
        assert buckets.has_room("u", 60, 3)
        await buckets.take("u", 60, 3)
    assert not buckets.has_room("u", 60, 3)
    assert buckets.has_room("u", 0, 1), "a rate of 0 is no limit"
    assert buckets.has_room("u", 60, 4), "other limits, another bucket"


async def test_buckets_forget_the_least_recently_used() -> None:
    buckets = Buckets(size=2)
    for name in ("a", "b", "c"):
        buckets.has_room(name, 60, 1)
    assert len(buckets) == 2


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 22, 23, 59, tzinfo=dt.UTC)
        self.seconds = 0.0


async def test_the_ledger_writes_in_batches_and_reads_back_totals() -> None:
    clock = Clock()
    async with MemoryStore() as store:
        ledger = UsageLedger(store, now=lambda: clock.now, clock=lambda: clock.seconds, flush_s=2.0)
        msg = in_room("hi", 0)
        ledger.count(msg, refused=False)
        ledger.spend(msg, prompt=10, cached=4, reply=3)
        await ledger.flush_due()
        assert await store.usage("0000-00-00") == [], "not yet: the last write is not 2 s old"
        assert await ledger.tokens_today("user", "telegram", "u1") == 9, "counted, not written yet"

        clock.seconds = 2.0
        await ledger.flush_due()
        [row] = await store.usage("0000-00-00")
        restarted = UsageLedger(store, now=lambda: clock.now)

        assert (row.messages, row.tokens) == (1, 9)
        assert await restarted.tokens_today("user", "telegram", "u1") == 9
        assert await restarted.tokens_today("channel", "telegram", "room") == 9


async def test_counts_a_failed_write_kept_are_added_to_what_came_since() -> None:
    """A write the store refused keeps its rows counted; what is counted meanwhile adds to
    them, and the next write stores the sum once."""
    clock = Clock()
    async with MemoryStore() as store:
        failing = FailingOnce(store)
        ledger = UsageLedger(failing, now=lambda: clock.now)
        msg = in_room("hi", 0)
        ledger.count(msg, refused=False)
        ledger.spend(msg, prompt=10, cached=4, reply=3)
        with pytest.raises(StoreUnavailableError):
            await ledger.flush()
        ledger.count(msg, refused=True)
        ledger.spend(msg, prompt=5, cached=0, reply=2)
        await ledger.flush()

        [row] = await store.usage("0000-00-00")
        assert (row.messages, row.refused, row.prompt_tokens, row.cached_tokens, row.reply_tokens) == (
            1, 1, 15, 4, 5)
        assert (row.author_id, row.author_name, row.day) == (msg.author_id, msg.author_name, "2026-11-22")


class FailingOnce:
    """A usage log whose first write fails as a store that is down does."""

    def __init__(self, store: MemoryStore) -> None:
        self._store, self._failed = store, False

    async def add_usage(self, rows: Sequence[Usage]) -> None:
        if not self._failed:
            self._failed = True
            raise StoreUnavailableError("add_usage", "database or disk is full")
        await self._store.add_usage(rows)

    async def usage(self, since: str, *, platform: str | None = None, channel: str | None = None,
                    author_id: str | None = None) -> list[Usage]:
        return await self._store.usage(since, platform=platform, channel=channel, author_id=author_id)


async def test_a_new_utc_day_starts_from_zero() -> None:
    clock = Clock()
    async with MemoryStore() as store:
        ledger = UsageLedger(store, now=lambda: clock.now)
        await ledger.tokens_today("user", "telegram", "u1")
        ledger.spend(in_room("hi", 0), prompt=10, cached=0, reply=5)
        assert await ledger.tokens_today("user", "telegram", "u1") == 15

        clock.now += dt.timedelta(minutes=2)
        await ledger.close()

        assert await ledger.tokens_today("user", "telegram", "u1") == 0
        assert [r.day for r in await store.usage("0000-00-00")] == ["2026-11-22"]


class CountingReads(FailingOnce):
    """A usage log that counts its reads (and never fails a write)."""

    def __init__(self, store: MemoryStore) -> None:
        super().__init__(store)
        self._failed = True
        self.reads = 0

    async def usage(self, since: str, *, platform: str | None = None, channel: str | None = None,
                    author_id: str | None = None) -> list[Usage]:
        self.reads += 1
        return await super().usage(since, platform=platform, channel=channel, author_id=author_id)


async def test_a_burst_of_new_authors_and_channels_reads_the_day_once() -> None:
    clock = Clock()
    async with MemoryStore() as store:
        earlier = UsageLedger(store, now=lambda: clock.now)  # before a restart
        earlier.spend(message("hi", "m0", ConversationKey("telegram", "c7"), author="a7"), 10, 0, 5)
        await earlier.close()
        log = CountingReads(store)
        ledger = UsageLedger(log, now=lambda: clock.now, clock=lambda: clock.seconds)

        needs = [ledger.tokens_today(scope, "telegram", f"{prefix}{n}")
                 for n in range(1000) for scope, prefix in (("user", "a"), ("channel", "c"))]
        totals = await asyncio.gather(*needs)

        assert log.reads == 1
        assert sum(totals) == 30 and totals[14:16] == [15, 15]  # a7's and c7's, stored before


async def test_first_needs_after_the_day_read_count_what_was_written_since() -> None:
    """Within DAY_READ_S of the day's read: this process's own writes since count; another
    process's spending is seen once the read is that old."""
    clock = Clock()
    async with MemoryStore() as store:
        ledger = UsageLedger(store, now=lambda: clock.now, clock=lambda: clock.seconds)
        other = UsageLedger(store, now=lambda: clock.now)
        assert await ledger.tokens_today("user", "telegram", "a1") == 0  # the day is read

        ledger.spend(in_room("hi", 0, author="a2"), prompt=10, cached=4, reply=3)
        await ledger.flush()
        ledger.spend(in_room("hi", 1, author="a2"), prompt=1, cached=0, reply=1)  # not written yet
        other.spend(in_room("hi", 2, author="a3"), prompt=20, cached=0, reply=0)
        await other.close()
        assert await ledger.tokens_today("user", "telegram", "a2") == 11

        clock.seconds += DAY_READ_S
        assert await ledger.tokens_today("user", "telegram", "a3") == 20
        assert await ledger.tokens_today("channel", "telegram", ROOM.channel) == 31
