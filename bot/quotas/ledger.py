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
DAY_READ_S = 60.0  # how long one read of the whole day's usage answers first needs
CLOSE_PATIENCE_S = 2.0  # at shutdown, how long the last write waits for a failing store
Scope = Literal["user", "channel"]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def day_of(moment: dt.datetime) -> str:
    """The UTC day a usage row is filed under."""
    return moment.astimezone(dt.UTC).date().isoformat()


# (messages, refused, prompt tokens, cached tokens, reply tokens), in Usage's order.
Counts = tuple[int, int, int, int, int]
TotalKey = tuple[str, Scope, str, str]  # (day, scope, platform, author or channel id)


def _counts(row: Usage) -> Counts:
    return (row.messages, row.refused, row.prompt_tokens, row.cached_tokens, row.reply_tokens)


class UsageLedger:
    """Counts messages and tokens per author and channel for the day (UTC).

    A token total (an author's on a platform, a channel's) comes from the store the
    first time a day needs it, so daily quotas hold across restarts; from then on it is
    kept here. The store is read for the whole day at once, and that read answers the
    first needs of the next DAY_READ_S seconds (with what this process wrote since): a
    burst of new channels costs one read, not two each, and another process's spending
    is seen within that time. Counts reach the store at most `flush_s` seconds after
    they happen, in one transaction, written by whichever call comes then, and at
    `close`: a crash loses at most those seconds of counts, and a flood costs no write
    per message."""

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
        self._totals: dict[TotalKey, int] = {}  # → tokens, kept from a first need on
        self._unwritten: dict[TotalKey, int] = {}  # → tokens counted here and not yet written
        self._stored: dict[TotalKey, int] = {}  # → tokens stored at the last day read, plus ours since
        self._stored_day = ""
        self._stored_at = -DAY_READ_S  # `clock` time of the last day read
        self._day = ""
        self._lock = asyncio.Lock()  # a flush and a day read never interleave

    def now(self) -> dt.datetime:
        return self._now()

    def today(self) -> str:
        return day_of(self._now())

    async def tokens_today(self, scope: Scope, platform: str, ident: str) -> int:
        """Tokens spent today by a user (`ident`: author id) or a channel (channel id)."""
        day = self._roll()
        key: TotalKey = (day, scope, platform, ident)
        if key not in self._totals:
            if self._stored_day != day or self._clock() - self._stored_at >= DAY_READ_S:
                await self._read_day(day)
            if key not in self._totals:  # (set meanwhile by another first need)
                self._totals[key] = self._stored.get(key, 0) + self._unwritten.get(key, 0)
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
            for row in rows:  # stored now: the day read's totals hold them, not the unwritten
                for key in _total_keys(row.day, row.platform, row.channel, row.author_id):
                    if left := self._unwritten.get(key, 0) - row.tokens:
                        self._unwritten[key] = left
                    else:
                        self._unwritten.pop(key, None)
                    if row.day == self._stored_day:
                        self._stored[key] = self._stored.get(key, 0) + row.tokens

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
        day = self._roll()
        tokens = counts[2] - counts[3] + counts[4]  # as `Usage.tokens` counts them
        if tokens:
            for key in _total_keys(day, msg.platform, msg.key.channel, msg.author_id):
                self._unwritten[key] = self._unwritten.get(key, 0) + tokens
        self._merge((day, msg.platform, msg.key.channel, msg.author_id, msg.author_name), counts)

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

    async def _read_day(self, day: str) -> None:
        """Every author's and channel's tokens stored for `day`, in one read (under the lock:
        a flush in flight would be counted twice or not at all)."""
        async with self._lock:
            if self._stored_day == day and self._clock() - self._stored_at < DAY_READ_S:
                return  # read by another first need meanwhile
            stored: dict[TotalKey, int] = {}
            for row in await self._log.usage(day):
                if row.day == day:
                    for key in _total_keys(day, row.platform, row.channel, row.author_id):
                        stored[key] = stored.get(key, 0) + row.tokens
            self._stored, self._stored_day, self._stored_at = stored, day, self._clock()


def _total_keys(day: str, platform: str, channel: str, author_id: str) -> tuple[TotalKey, TotalKey]:
    """The two totals a usage row adds to: its author's on the platform, and its channel's."""
    return (day, "user", platform, author_id), (day, "channel", platform, channel)
