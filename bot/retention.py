"""Retention: old moderation verdicts, usage rows and (when the owner asks) messages are
deleted, a batch at a time, at start-up and then every hour.

Without it the database only grew (measured: 2.1 KB per answered message, two
thirds of it verdicts). Each batch is one short transaction of the store's
(`bot.store.base.Retention`), with a pause between batches, so a large first prune
never holds the write lock for long and messages keep being stored meanwhile.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from bot.errors import StoreUnavailableError
from bot.store import Retention

log = logging.getLogger(__name__)

PRUNE_BATCH = 500  # rows per transaction: a few milliseconds of the write lock
PRUNE_PAUSE_S = 0.05  # between batches: other writers go first
PRUNE_INTERVAL_S = 3600.0
DAY_S = 86_400.0

Cutoff = TypeVar("Cutoff", float, str)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Days each kind of row is kept; 0 keeps it forever."""

    verdict_days: int = 30
    usage_days: int = 30
    message_days: int = 0


@dataclass(frozen=True, slots=True)
class Pruned:
    """How many rows one pass deleted."""

    verdicts: int = 0
    usage: int = 0
    messages: int = 0


class Pruner:
    """Deletes what `policy` no longer keeps from `store`; `run` does so regularly."""

    def __init__(
        self, store: Retention, policy: RetentionPolicy, *, batch: int = PRUNE_BATCH,
        pause_s: float = PRUNE_PAUSE_S, clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._policy = policy
        self._batch = batch
        self._pause_s = pause_s
        self._clock = clock

    async def prune(self) -> Pruned:
        """One pass: verdicts (first, so deleting messages detaches fewer), usage rows,
        messages, each batch by batch until nothing older is left. Raises
        StoreUnavailableError when the store fails."""
        now, policy = self._clock(), self._policy
        pruned = Pruned(
            verdicts=await self._drain(self._store.prune_verdicts, now - policy.verdict_days * DAY_S,
                                       policy.verdict_days),
            usage=await self._drain(self._store.prune_usage, _day(now, policy.usage_days), policy.usage_days),
            messages=await self._drain(self._store.prune_messages, now - policy.message_days * DAY_S,
                                       policy.message_days),
        )
        if pruned != Pruned():
            log.info("retention deleted verdicts: %d, usage rows: %d, messages: %d",
                     pruned.verdicts, pruned.usage, pruned.messages)
        return pruned

    async def run(self, interval_s: float = PRUNE_INTERVAL_S) -> None:
        """Prune now and then every `interval_s`, until cancelled; a pass the store
        fails is logged and tried again at the next."""
        while True:
            try:
                await self.prune()
            except StoreUnavailableError as exc:
                log.warning("retention: %s; trying again in %.0f s", exc, interval_s)
            await asyncio.sleep(interval_s)

    async def _drain(self, prune: Callable[[Cutoff, int], Awaitable[int]], before: Cutoff, days: int) -> int:
        """Call `prune(before, batch)` until a batch comes back short; how many in all.
        Nothing when `days` is 0 (kept forever)."""
        total = 0
        while days > 0:
            deleted = await prune(before, self._batch)
            total += deleted
            if deleted < self._batch:
                break
            await asyncio.sleep(self._pause_s)
        return total


def _day(now: float, days: int) -> str:
    """The UTC day (`YYYY-MM-DD`, as usage rows are filed) `days` before `now`'s."""
    return (dt.datetime.fromtimestamp(now, dt.UTC).date() - dt.timedelta(days=days)).isoformat()
