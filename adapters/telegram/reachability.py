"""Whether Telegram answers, and when to give up: HEARTH_PLATFORM_DOWN_S, kept to within seconds.

The clock starts when the first call that failed was sent (not when its answer, or
its timeout, came back) and stops at the next call that gets an answer. Every pause
between tries is cut to the time left, and while Telegram is failing each call is
bounded by that time too, so `PlatformDownError` comes at `down_s` plus at most
`SLACK_S` and one short call. The adapter keeps one for its whole life: start-up
(getMe) and polling count against the same clock, across restarts of `run()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from bot.errors import PlatformDownError

PLATFORM = "telegram"
BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # between tries; the last repeats
SLACK_S = 1.0  # a call made with no time left may still take this long
NO_ANSWER = "no answer in time"


class Reachability:
    """Since when Telegram has not answered, and how long to wait before the next try."""

    def __init__(self, down_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.down_s = down_s
        self._clock = clock
        self._since: float | None = None
        self._failures = 0
        self._reason = NO_ANSWER

    @property
    def failing(self) -> bool:
        return self._since is not None

    def now(self) -> float:
        return self._clock()

    def ok(self) -> None:
        """Telegram answered."""
        self._since, self._failures = None, 0

    def failed(self, sent: float, reason: str | None) -> float:
        """A call sent at `sent` got no answer: the seconds to wait before the next try.
        `reason` is Telegram's word, None when the call ran out of time (`bounded`): the
        last word heard then stands, the clearer one.

        Raises PlatformDownError once Telegram has not answered for `down_s`."""
        self._reason = reason or (self._reason if self._since is not None else NO_ANSWER)
        reason = self._reason
        self._since = sent if self._since is None else self._since
        down = self._clock() - self._since
        if down >= self.down_s:
            raise PlatformDownError(PLATFORM, down, reason)
        wait = BACKOFF_S[min(self._failures, len(BACKOFF_S) - 1)]
        self._failures += 1
        return min(wait, self.down_s - down)

    def bounded(self) -> asyncio.Timeout:
        """Around one call: no limit while Telegram answers; while it fails, the time left
        (plus `SLACK_S`), so a call that hangs cannot carry the wait past `down_s`.
        Raises TimeoutError when the call runs out."""
        if self._since is None:
            return asyncio.timeout(None)
        left = self.down_s - (self._clock() - self._since)
        return asyncio.timeout(max(left, 0.0) + SLACK_S)


async def pause(stopping: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds`, or less when `stopping` is set meanwhile; whether it was."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
    return stopping.is_set()
