"""Long polling that confirms an update only once Hearth has taken it, or given up on it.

Telegram forgets an update when a later `getUpdates` asks for an offset past it.
python-telegram-bot's Updater moves the offset as soon as a batch is queued, so a
crash lost every update still waiting in its queue. Here each update of a batch
is handed over (and the message stored) before the next, and only then does the
offset move: whatever a crash interrupts, Telegram delivers again.

The batch is fetched raw and each update parsed on its own: PTB's `get_updates`
parses the whole batch at once, so one update it could not read (a newer Bot API
field, an odd shape) failed every poll, and the message behind it was never
answered. An update that cannot be read, or whose handling fails unexpectedly, is
logged (its id, never its text) and skipped: the offset moves past it. One the
store could not commit (`StoreUnavailableError`) was not taken: it is tried again,
with backoff, and the offset stays.

The loop is also the adapter's liveness: a rejected token ends it at once
(`PlatformAuthError`); Telegram unreachable for longer than HEARTH_PLATFORM_DOWN_S
ends it too (`PlatformDownError`, see `Reachability`), so the process exits and its
supervisor restarts it instead of running deaf.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Bot, Update
from telegram.error import Conflict, EndPointNotFound, Forbidden, InvalidToken, RetryAfter, TelegramError
from telegram.warnings import PTBUserWarning

from adapters.telegram.pacing import retry_after_seconds
from adapters.telegram.reachability import Reachability, pause
from bot.errors import PlatformAuthError, StoreUnavailableError

log = logging.getLogger(__name__)

PLATFORM = "telegram"
ALLOWED_UPDATES = ("message",)
READ_SLACK_S = 10.0  # a long poll's read timeout: the poll's own length plus this
STORE_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)  # the store failing: tries of one update; the last repeats
# PTB points at `get_updates`, which parses the whole batch at once: raw is on purpose here.
RAW_POLL_HINT = r"Please use 'Bot\.getUpdates'"

Handle = Callable[[Update], Awaitable[None]]


class Poller:
    """`getUpdates` in a loop; `handle` each update, then confirm it (the next call's offset)."""

    def __init__(
        self, bot: Bot, handle: Handle, *, poll_timeout: float, reach: Reachability,
        scrub: Callable[[str], str],
    ) -> None:
        self._bot = bot
        self._handle = handle
        self._poll_timeout = poll_timeout
        self._reach = reach
        self._scrub = scrub
        self._offset: int | None = None

    async def run(self, stopping: asyncio.Event) -> None:
        """Poll until `stopping` is set; raises PlatformAuthError / PlatformDownError."""
        warnings.filterwarnings("ignore", RAW_POLL_HINT, PTBUserWarning)
        # Polling and a webhook exclude each other.
        while not stopping.is_set() and await self._call(self._bot.delete_webhook, stopping) is None:
            pass
        while not stopping.is_set():
            batch = await self._call(self._fetch, stopping)
            for raw in batch or ():
                if not await self._take(raw, stopping):
                    break
        await self._confirm()

    async def _call(self, call: Callable[[], Awaitable[Any]], stopping: asyncio.Event) -> Any:
        """One call to Telegram; None when it failed (after the pause before the next try)."""
        sent = self._reach.now()
        try:
            async with self._reach.bounded():
                result = await _unless_stopped(call(), stopping)
        except (InvalidToken, EndPointNotFound, Forbidden) as exc:
            # do_api_request reports a rejected token as EndPointNotFound: getUpdates exists.
            reason = "Unauthorized" if isinstance(exc, EndPointNotFound) else self._scrub(str(exc))
            raise PlatformAuthError(PLATFORM, reason) from None
        except Conflict as exc:
            raise PlatformAuthError(PLATFORM, f"another process polls this bot: {exc}") from None
        except RetryAfter as exc:  # Telegram answered: slow down, but it is not down
            await pause(stopping, retry_after_seconds(exc))
            return None
        except (TelegramError, TimeoutError) as exc:
            said = self._scrub(str(exc)) if isinstance(exc, TelegramError) else None
            wait = self._reach.failed(sent, said)  # raises PlatformDownError past down_s
            log.warning("polling Telegram failed (%s); retrying in %.1f s", said or "no answer in time", wait)
            await pause(stopping, wait)
            return None
        self._reach.ok()
        return result

    async def _fetch(self) -> list[Any]:
        """One poll, raw: a short one while Telegram is failing, so an answer comes at once."""
        timeout = 0 if self._reach.failing else int(self._poll_timeout)
        kwargs = {"offset": self._offset, "timeout": timeout, "allowed_updates": list(ALLOWED_UPDATES)}
        result = await self._bot.do_api_request(
            "getUpdates", api_kwargs=kwargs, read_timeout=timeout + READ_SLACK_S,
        )
        return result if isinstance(result, list) else []

    async def _take(self, raw: object, stopping: asyncio.Event) -> bool:
        """Hand one update over and move the offset past it; False when stopping came first
        (the update stays unconfirmed, and Telegram delivers it again)."""
        update_id = raw.get("update_id") if isinstance(raw, dict) else None
        update = self._parse(raw, update_id)
        if update is not None and not await self._hand_over(update, stopping):
            return False
        if isinstance(update_id, int):
            self._offset = update_id + 1
        return True

    def _parse(self, raw: object, update_id: object) -> Update | None:
        try:
            return Update.de_json(raw, self._bot)  # type: ignore[arg-type]
        except Exception as exc:  # the boundary of one update from outside: any shape may come
            log.warning("Telegram update %s could not be read (%s); skipped", update_id, type(exc).__name__)
            return None

    async def _hand_over(self, update: Update, stopping: asyncio.Event) -> bool:
        """`handle(update)`, again while the store cannot commit it; False if stopped meanwhile."""
        tries = 0
        while True:
            try:
                await self._handle(update)
            except StoreUnavailableError as exc:
                if tries == 0:
                    log.warning("update %d not stored (%s); trying again until the store is back",
                                update.update_id, exc.reason)
            except Exception:  # the boundary of one update: a bug must not stop polling
                log.warning("Telegram update %d failed in handling; skipped", update.update_id, exc_info=True)
                return True
            else:
                if tries:
                    log.info("update %d stored after %d tries", update.update_id, tries + 1)
                return True
            if await pause(stopping, STORE_BACKOFF_S[min(tries, len(STORE_BACKOFF_S) - 1)]):
                return False
            tries += 1

    async def _confirm(self) -> None:
        """At stop, tell Telegram what was taken, so it is not delivered again."""
        if self._offset is None:
            return
        try:  # raw, as every poll: PTB would parse the update after the offset too
            kwargs = {"offset": self._offset, "timeout": 0, "limit": 1}
            await self._bot.do_api_request("getUpdates", api_kwargs=kwargs)
        except TelegramError as exc:  # it will be delivered again, and deduplicated
            log.info("could not confirm the last updates: %s", self._scrub(str(exc)))


async def _unless_stopped(call: Awaitable[Any], stopping: asyncio.Event) -> Any:
    """`call`'s result; None, with the call abandoned (nothing confirmed by it), once
    `stopping` is set."""
    work = asyncio.ensure_future(call)
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait([work, stop], return_when=asyncio.FIRST_COMPLETED)
    finally:
        abandoned = [f for f in (work, stop) if not f.done() or f is stop]
        for future in abandoned:
            future.cancel()
        await asyncio.gather(*abandoned, return_exceptions=True)
    return None if work.cancelled() else work.result()


