"""Today's usage per author and channel: counted in memory, kept in the store in batches."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import operator
import time
from collections.abc import Callable
from typing import Literal

from bot.errors import StoreUnavailableError
from bot.messages import IncomingMessage, Usage
from bot.store import UsageLog
from bot.store.faults import patience

log = logging.getLogger(__name__)

FLUSH_S = 2.0
CLOSE_PATIENCE_S = 2.0  # at shutdown, how long the last write waits for a failing store
Scope = Literal["user", "channel"]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def day_of(moment: dt.datetime) -> str:
    """The UTC day a usage row is filed under."""
    return moment.astimezone(dt.UTC).date().isoformat()


# (messages, refused, prompt tokens, cached tokens, reply tokens), in Usage's order.
Counts = tuple[int, int, int, int, int]


def _counts(row: Usage) -> Counts:
    return (row.messages, row.refused, row.prompt_tokens, row.cached_tokens, row.reply_tokens)


class UsageLedger:
    """Counts messages and tokens per author and channel for the day (UTC).

    A token total (an author's on a platform, a channel's) is read from the store the
    first time a day needs it, so daily quotas hold across restarts; from then on it is
    kept here. Counts reach the store at most `flush_s` seconds after they happen, in
    one transaction, written by whichever call comes then, and at `close`: a crash
    loses at most those seconds of counts, and a flood costs no write per message."""

    def __init__(
        self, log: UsageLog, now: Callable[[], dt.datetime] = utc_now,
        clock: Callable[[], float] = time.monotonic, flush_s: float = FLUSH_S,
    ) -> None:
        self._log = log
        self._now = now
        self._clock = clock
        self._flush_s = flush_s
        self._last_flush = clock()
        self._pending: dict[tuple[str, str, str, str], Usage] = {}
        self._totals: dict[tuple[str, Scope, str, str], int] = {}  # (day, scope, platform, id) → tokens
        self._day = ""
        self._lock = asyncio.Lock()  # a flush and a first read never interleave

    def now(self) -> dt.datetime:
        return self._now()

    def today(self) -> str:
        return day_of(self._now())

    async def tokens_today(self, scope: Scope, platform: str, ident: str) -> int:
        """Tokens spent today by a user (`ident`: author id) or a channel (channel id)."""
        day = self._roll()
        key = (day, scope, platform, ident)
        if key not in self._totals:
            async with self._lock:
                if key not in self._totals:
                    self._totals[key] = await self._stored_tokens(day, scope, platform, ident)
        return self._totals[key]

    def count(self, msg: IncomingMessage, *, refused: bool) -> None:
        """One message from `msg`'s author: taken for answering, or refused by a quota."""
        self._add(msg, (int(not refused), int(refused), 0, 0, 0))

    def spend(self, msg: IncomingMessage, prompt: int, cached: int, reply: int) -> None:
        """The tokens of the reply to `msg`, charged to its author and its channel."""
        tokens = prompt - cached + reply  # as `Usage.tokens` counts them
        day = self._roll()
        keys = ((day, "user", msg.platform, msg.author_id), (day, "channel", msg.platform, msg.key.channel))
        for key in keys:
            if key in self._totals:
                self._totals[key] += tokens
        self._add(msg, (0, 0, prompt, cached, reply))

    async def flush_due(self) -> None:
        """Write what was counted if the last write is `flush_s` seconds old."""
        if self._pending and self._clock() - self._last_flush >= self._flush_s:
            await self.flush()

    async def flush(self) -> None:
        """Write everything counted so far; on failure it stays counted, for the next try."""
        async with self._lock:
            rows, self._pending = list(self._pending.values()), {}
            self._last_flush = self._clock()
            try:
                await self._log.add_usage(rows)
            except BaseException:
                for row in rows:
                    who = (row.day, row.platform, row.channel, row.author_id, row.author_name)
                    self._merge(who, _counts(row))
                raise

    async def close(self) -> None:
        """Write what is counted; a store still failing at shutdown gets CLOSE_PATIENCE_S
        (the counts are lost then, logged: usage is not worth outliving the 10 s stop)."""
        try:
            with patience(CLOSE_PATIENCE_S):
                await self.flush()
        except StoreUnavailableError as exc:
            log.warning("today's last usage counts were not written: %s", exc)

    def _add(self, msg: IncomingMessage, counts: Counts) -> None:
        """Add `counts` to `msg`'s author's row for today."""
        self._merge((self._roll(), msg.platform, msg.key.channel, msg.author_id, msg.author_name), counts)

    def _merge(self, who: tuple[str, str, str, str, str], counts: Counts) -> None:
        """Add `counts` to the pending row of `who` (day, platform, channel, author id and
        name): one Usage made per call, where `dataclasses.replace` made three (a frozen
        dataclass costs microseconds each)."""
        key = who[:4]
        stored = self._pending.get(key)
        if stored is not None:
            counts = tuple(map(operator.add, _counts(stored), counts))
        self._pending[key] = Usage(*who, *counts)

    def _roll(self) -> str:
        """Today; a new day forgets yesterday's totals (their rows are in the store)."""
        day = self.today()
        if day != self._day:
            self._day = day
            self._totals = {k: v for k, v in self._totals.items() if k[0] == day}
        return day

    async def _stored_tokens(self, day: str, scope: Scope, platform: str, ident: str) -> int:
        """The store's total plus what is counted here and not written yet (under the lock)."""
        if scope == "user":
            rows = await self._log.usage(day, platform=platform, author_id=ident)
            unwritten = [r for r in self._pending.values() if r.author_id == ident]
        else:
            rows = await self._log.usage(day, platform=platform, channel=ident)
            unwritten = [r for r in self._pending.values() if r.channel == ident]
        unwritten = [r for r in unwritten if (r.day, r.platform) == (day, platform)]
        return sum(r.tokens for r in rows if r.day == day) + sum(r.tokens for r in unwritten)
