"""Telegram's flood limits and retries, applied to every Bot API call but getUpdates.

python-telegram-bot routes each request through a `BaseRateLimiter`; this one
throttles what Telegram counts (messages and edits: about one a second per chat,
20 a minute per group, 30 a second overall), waits out a 429's `retry_after`, and
retries network errors a bounded number of times with backoff. PTB's own
`AIORateLimiter` does not pace private chats and charges chat actions against a
group's 20 a minute, hence this small replacement built on the same aiolimiter.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import warnings
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiolimiter import AsyncLimiter
from telegram.error import BadRequest, NetworkError, RetryAfter
from telegram.ext import BaseRateLimiter
from telegram.warnings import PTBDeprecationWarning

log = logging.getLogger(__name__)

MESSAGE_ENDPOINTS = frozenset({"sendMessage", "editMessageText"})
NO_RETRY_ENDPOINTS = frozenset({"sendChatAction"})  # the next tick sends another
COSMETIC_ENDPOINTS = frozenset({"sendChatAction"})  # skipped, never queued, when the budget is spent
MAX_LIMITERS = 1024
RETRY_SLACK_S = 0.1

Result = bool | dict[str, Any] | list[dict[str, Any]]
Callback = Callable[..., Coroutine[Any, Any, Result]]


@dataclass(frozen=True, slots=True)
class Pacing:
    """Telegram's limits and the adapter's timings; tests pass a faster one."""

    edit_interval: float = 1.0  # seconds between two edits of one streamed reply
    chat_interval: float = 1.0  # at most one message or edit per chat in this many seconds
    group_messages: int = 20  # messages or edits per group chat …
    group_window: float = 60.0  # … in this many seconds
    overall_per_second: int = 30
    typing_every: float = 4.0  # Telegram shows "typing…" for about 5 s
    admin_cache_ttl: float = 60.0
    max_retries: int = 3  # per call, for 429s and network errors
    retry_backoff: float = 0.5  # network errors: 0.5, 1, 2 s
    poll_timeout: float = 30.0  # long-poll seconds
    concurrent_updates: int = 256
    shutdown_grace: float = 5.0  # replies in flight may finish within this at stop


class PacedRequests(BaseRateLimiter[int]):
    """Throttles message endpoints per chat, per group and overall; retries failures."""

    def __init__(self, pacing: Pacing, sleep: Callable[[float], Coroutine[Any, Any, None]] = asyncio.sleep):
        self._pacing = pacing
        self._sleep = sleep
        self._overall = AsyncLimiter(pacing.overall_per_second, 1) if pacing.overall_per_second else None
        self._chats: dict[str, AsyncLimiter] = {}
        self._groups: dict[str, AsyncLimiter] = {}

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""

    async def process_request(
        self,
        callback: Callback,
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Result:
        retries = 0 if endpoint in NO_RETRY_ENDPOINTS else self._pacing.max_retries
        if endpoint in COSMETIC_ENDPOINTS and not self._has_room():
            return True  # "typing…" never spends the budget replies need: skip it this time
        for attempt in range(retries + 1):
            try:
                for limiter in self._limiters(endpoint, data.get("chat_id")):
                    await limiter.acquire()
                return await callback(*args, **kwargs)
            except (RetryAfter, NetworkError) as exc:
                # BadRequest is a NetworkError in PTB, but sending it again changes nothing.
                if attempt == retries or isinstance(exc, BadRequest):
                    raise
                await self._sleep(self._backoff(exc, endpoint, attempt, retries))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _has_room(self) -> bool:
        return self._overall is None or self._overall.has_capacity()

    def _backoff(self, exc: RetryAfter | NetworkError, endpoint: str, attempt: int, retries: int) -> float:
        """Seconds to wait before the next attempt: what Telegram asked for, or exponential."""
        if isinstance(exc, RetryAfter):
            wait = retry_after_seconds(exc) + RETRY_SLACK_S
        else:
            wait = self._pacing.retry_backoff * 2**attempt
        log.warning("%s failed (%s); retry %d of %d in %.1f s", endpoint, exc, attempt + 1, retries, wait)
        return wait

    def _limiters(self, endpoint: str, chat_id: object) -> list[AsyncLimiter]:
        """The buckets a call must pass: overall for any chat, per chat and group for messages."""
        if chat_id is None:
            return []
        pacing, chat = self._pacing, str(chat_id)
        limiters = [self._overall] if self._overall is not None else []
        if endpoint not in MESSAGE_ENDPOINTS:
            return limiters
        if pacing.chat_interval > 0:
            limiters.insert(0, self._limiter(self._chats, chat, 1, pacing.chat_interval))
        if _is_group(chat) and pacing.group_messages and pacing.group_window > 0:
            limiters.insert(0, self._limiter(self._groups, chat, pacing.group_messages, pacing.group_window))
        return limiters

    @staticmethod
    def _limiter(limiters: dict[str, AsyncLimiter], chat: str, rate: float, period: float) -> AsyncLimiter:
        if len(limiters) > MAX_LIMITERS:  # forget chats whose buckets have drained
            for key in [k for k, v in limiters.items() if k != chat and v.has_capacity(v.max_rate)]:
                del limiters[key]
        if chat not in limiters:
            limiters[chat] = AsyncLimiter(rate, period)
        return limiters[chat]


def retry_after_seconds(exc: RetryAfter) -> float:
    """The wait Telegram asked for, without PTB's int-vs-timedelta deprecation warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def _is_group(chat: str) -> bool:
    """Group, supergroup and channel ids are negative; a `@username` names one too."""
    return chat.startswith(("-", "@"))
