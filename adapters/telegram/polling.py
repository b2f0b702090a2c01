"""Long polling that confirms an update only once Hearth has taken it.

Telegram forgets an update when a later `getUpdates` asks for an offset past it.
python-telegram-bot's Updater moves the offset as soon as a batch is queued, so a
crash lost every update still waiting in its queue. Here each update of a batch
is handed over (and the message stored) before the next, and only then does the
offset move: whatever a crash interrupts, Telegram delivers again.

The loop is also the adapter's liveness: a rejected token ends it at once
(`PlatformAuthError`); Telegram unreachable for longer than `down_s` seconds ends
it too (`PlatformDownError`), so the process exits and its supervisor restarts
it instead of running deaf.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from telegram import Bot, Update
from telegram.error import Conflict, Forbidden, InvalidToken, RetryAfter, TelegramError

from adapters.telegram.pacing import retry_after_seconds
from bot.errors import PlatformAuthError, PlatformDownError

log = logging.getLogger(__name__)

PLATFORM = "telegram"
ALLOWED_UPDATES = ("message",)
BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)

Handle = Callable[[Update], Awaitable[None]]


class Poller:
    """`getUpdates` in a loop; `handle` each update, then confirm it (the next call's offset)."""

    def __init__(
        self, bot: Bot, handle: Handle, *, poll_timeout: float, down_s: float,
        scrub: Callable[[str], str], clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bot = bot
        self._handle = handle
        self._poll_timeout = poll_timeout
        self._down_s = down_s
        self._scrub = scrub
        self._clock = clock
        self._offset: int | None = None

    async def run(self, stopping: asyncio.Event) -> None:
        """Poll until `stopping` is set; raises PlatformAuthError / PlatformDownError."""
        await self._bot.delete_webhook()  # polling and a webhook exclude each other
        last_ok, failures = self._clock(), 0
        while not stopping.is_set():
            try:
                updates = await self._fetch(stopping)
            except (InvalidToken, Forbidden) as exc:
                raise PlatformAuthError(PLATFORM, self._scrub(str(exc))) from None
            except Conflict as exc:
                raise PlatformAuthError(PLATFORM, f"another process polls this bot: {exc}") from None
            except TelegramError as exc:
                last_ok, failures = await self._wait_out(exc, last_ok, failures)
                continue
            last_ok, failures = self._clock(), 0
            for update in updates:
                await self._handle(update)
                self._offset = update.update_id + 1
        await self._confirm()

    async def _fetch(self, stopping: asyncio.Event) -> tuple[Update, ...]:
        """One long poll, abandoned (nothing confirmed by it) when `stopping` is set."""
        poll = asyncio.ensure_future(self._bot.get_updates(
            offset=self._offset, timeout=int(self._poll_timeout), allowed_updates=ALLOWED_UPDATES,
        ))
        stop = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait([poll, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            abandoned = [f for f in (poll, stop) if not f.done() or f is stop]
            for future in abandoned:
                future.cancel()
            await asyncio.gather(*abandoned, return_exceptions=True)
        if poll.cancelled():
            return ()
        return poll.result()

    async def _wait_out(self, exc: TelegramError, last_ok: float, failures: int) -> tuple[float, int]:
        down = self._clock() - last_ok
        if down > self._down_s:
            raise PlatformDownError(PLATFORM, down, self._scrub(str(exc))) from None
        wait = retry_after_seconds(exc) if isinstance(exc, RetryAfter) else BACKOFF_S[min(failures, 5)]
        log.warning("polling Telegram failed (%s); retrying in %.1f s", self._scrub(str(exc)), wait)
        await asyncio.sleep(wait)
        return last_ok, failures + 1

    async def _confirm(self) -> None:
        """At stop, tell Telegram what was taken, so it is not delivered again."""
        if self._offset is None:
            return
        try:
            await self._bot.get_updates(offset=self._offset, timeout=0, limit=1)
        except TelegramError as exc:  # it will be delivered again, and deduplicated
            log.info("could not confirm the last updates: %s", self._scrub(str(exc)))
