"""Rate limits as leaky buckets, one per user or channel (aiolimiter's `AsyncLimiter`)."""

from __future__ import annotations

from collections import OrderedDict

from aiolimiter import AsyncLimiter

MAX_BUCKETS = 20_000  # the least recently used are forgotten past this (forgotten = full)


class Buckets:
    """Leaky buckets by name: `burst` messages at once, refilled at `per_minute`.

    A refused message takes nothing from any bucket, so checking comes before taking:
    `has_room` for every bucket a message must pass, then `take` from each. A bucket
    whose limits change is a new one (its name includes them)."""

    def __init__(self, size: int = MAX_BUCKETS) -> None:
        self._size = size
        self._buckets: OrderedDict[tuple[str, int, int], AsyncLimiter] = OrderedDict()

    def has_room(self, name: str, per_minute: int, burst: int) -> bool:
        """Whether one more message fits now (always, for a rate of 0: no limit)."""
        return per_minute == 0 or self._bucket(name, per_minute, burst).has_capacity()

    async def take(self, name: str, per_minute: int, burst: int) -> None:
        """Count one message; after `has_room` said yes it never waits."""
        if per_minute:
            await self._bucket(name, per_minute, burst).acquire()

    def __len__(self) -> int:
        return len(self._buckets)

    def _bucket(self, name: str, per_minute: int, burst: int) -> AsyncLimiter:
        key = (name, per_minute, burst)
        bucket = self._buckets.get(key)
        if bucket is None:
            # max_rate at once, drained at max_rate / time_period: burst, then per_minute / 60 a second.
            bucket = self._buckets[key] = AsyncLimiter(burst, burst * 60.0 / per_minute)
            while len(self._buckets) > self._size:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(key)
        return bucket


def seconds_per_message(per_minute: int) -> float:
    """How long a full bucket takes to make room for one message."""
    return 60.0 / per_minute if per_minute else 0.0
