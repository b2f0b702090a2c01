"""`Pruner`: what each policy keeps, batch by batch, and a pass the store fails.

The store is the in-memory one (the stores' own pruning is tested against every
implementation in test_store_retention.py); "old" means the pruner's clock is set
days ahead."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest

from bot.errors import StoreUnavailableError
from bot.messages import ConversationKey, Usage, Verdict
from bot.retention import DAY_S, Pruned, Pruner, RetentionPolicy
from bot.store import MemoryStore

pytestmark = pytest.mark.asyncio

ROOM = ConversationKey("telegram", "-100")
MARCH_1 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC).timestamp()


def days_ahead(days: float) -> float:
    return time.time() + days * DAY_S


class CountingStore(MemoryStore):
    """The in-memory store, counting the batches asked of it."""

    def __init__(self) -> None:
        super().__init__()
        self.batches = 0

    async def prune_verdicts(self, before: float, limit: int) -> int:
        self.batches += 1
        return await super().prune_verdicts(before, limit)


class FailingOnceStore(MemoryStore):
    """The in-memory store whose first prune fails as a database that is down would."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def prune_verdicts(self, before: float, limit: int) -> int:
        self.calls += 1
        if self.calls == 1:
            raise StoreUnavailableError("prune verdicts", "disk I/O error")
        return await super().prune_verdicts(before, limit)


async def stocked(store: MemoryStore, verdicts: int = 1, messages: int = 1) -> MemoryStore:
    await store.open()
    for n in range(messages):
        await store.add_message(ROOM, "user", f"m{n}", status="answered")
    for _ in range(verdicts):
        await store.add_verdict(ROOM, None, "input", Verdict(False))
    return store


async def test_verdicts_go_once_older_than_their_days() -> None:
    store = await stocked(MemoryStore())
    policy = RetentionPolicy(verdict_days=30)
    assert await Pruner(store, policy, clock=lambda: days_ahead(29)).prune() == Pruned()
    assert await Pruner(store, policy, clock=lambda: days_ahead(31)).prune() == Pruned(verdicts=1)
    assert await store.verdicts(ROOM) == []


async def test_messages_are_kept_forever_by_default() -> None:
    store = await stocked(MemoryStore(), messages=3)
    await Pruner(store, RetentionPolicy(), clock=lambda: days_ahead(10_000)).prune()
    assert await store.message_count() == 3


async def test_messages_go_when_the_owner_sets_their_days() -> None:
    store = await stocked(MemoryStore(), messages=3)
    pruned = await Pruner(store, RetentionPolicy(message_days=7), clock=lambda: days_ahead(8)).prune()
    assert pruned.messages == 3
    assert await store.message_count() == 0


async def test_zero_days_keeps_verdicts_forever() -> None:
    store = await stocked(MemoryStore())
    await Pruner(store, RetentionPolicy(verdict_days=0), clock=lambda: days_ahead(10_000)).prune()
    assert len(await store.verdicts(ROOM)) == 1


async def test_usage_rows_go_by_their_utc_day() -> None:
    store = await stocked(MemoryStore(), verdicts=0, messages=0)
    days = ("2026-01-29", "2026-01-30", "2026-02-28")
    await store.add_usage([Usage(day, "telegram", "-100", "ann", messages=1) for day in days])
    pruned = await Pruner(store, RetentionPolicy(usage_days=30), clock=lambda: MARCH_1).prune()
    assert pruned.usage == 1  # 2026-03-01 less 30 days is 2026-01-30: the day before it goes
    assert [row.day for row in await store.usage("2026-01-01")] == ["2026-01-30", "2026-02-28"]


async def test_a_pass_goes_batch_by_batch_until_nothing_old_is_left() -> None:
    store = await stocked(CountingStore(), verdicts=5)
    pruner = Pruner(store, RetentionPolicy(), batch=2, pause_s=0.0, clock=lambda: days_ahead(31))
    assert (await pruner.prune()).verdicts == 5
    assert store.batches == 3  # 2, 2, then 1: a short batch ends the pass


async def test_a_pass_the_store_fails_is_tried_again_at_the_next() -> None:
    store = await stocked(FailingOnceStore())
    pruner = Pruner(store, RetentionPolicy(), clock=lambda: days_ahead(31))
    task = asyncio.create_task(pruner.run(interval_s=0.01))
    try:
        for _ in range(500):
            if not await store.verdicts(ROOM):
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert store.calls >= 2
    assert await store.verdicts(ROOM) == []
