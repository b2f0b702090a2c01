"""Showing a reply while it is generated: one message edited in place, more when long."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from bot.errors import DeliveryError, HearthError
from bot.messages import ConversationKey
from bot.ports import ReplyChannel
from bot.splitting import split_message

log = logging.getLogger(__name__)

WITHDRAWN = "…"  # what a surplus message shows when the platform will not delete it


class ReplyStream:
    """Keeps a platform's view of one reply in step with its (moderated) text.

    Edits are throttled to the platform's interval; parts that already show the
    right text are never edited again.
    """

    def __init__(
        self,
        channel: ReplyChannel,
        key: ConversationKey,
        reply_to: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_sent: Callable[[list[str]], Awaitable[None]] | None = None,
        shown: Sequence[str] = (),
    ) -> None:
        self._channel = channel
        self._key = key
        self._reply_to = reply_to
        self._clock = clock
        # Parts posted earlier (a reply delivered again): edited in place, their text unknown.
        self._ids: list[str] = list(shown)
        self._shown: list[str] = [""] * len(shown)
        self._last = float("-inf")
        self._on_sent = on_sent

    @property
    def spoiler(self) -> Callable[[str], str] | None:
        """How the platform hides text until clicked, if it can."""
        return self._channel.limits.spoiler

    @property
    def message_ids(self) -> list[str]:
        return list(self._ids)

    def due(self) -> bool:
        """Whether the platform's edit interval has passed since the last update."""
        return self._clock() - self._last >= self._channel.limits.edit_interval

    async def update(self, text: str) -> None:
        """Show `text` if the platform's edit interval has passed. While the platform fails
        for now (`DeliveryError.transient`) updates are skipped: a later one, or `finish`,
        catches up. A final refusal (4xx) raises."""
        if not self.due():
            return
        try:
            await self._show(text)
        except DeliveryError as exc:
            if not exc.transient:
                raise
            self._last = self._clock()  # wait an interval before trying again
            log.info("could not update the reply in %s now (%s); going on", self._key, exc)

    async def finish(self, text: str) -> None:
        """Show the final text, whatever the interval. Raises DeliveryError."""
        await self._show(text)

    async def _show(self, text: str) -> None:
        if not text.strip():
            return
        limits = self._channel.limits
        parts = split_message(text, limits.max_chars, limits.measure)
        for index, part in enumerate(parts):
            await self._put(index, part)
        await self._drop_surplus(len(parts))
        self._last = self._clock()

    async def _drop_surplus(self, keep: int) -> None:
        """The text got shorter (a refusal or an apology replaced a long reply): messages
        past `keep` would still show the abandoned text. Delete them; where the platform
        refuses, blank them to a continuation mark instead."""
        while len(self._ids) > keep:
            message_id = self._ids[-1]
            try:
                await self._channel.delete(self._key, message_id)
            except HearthError as exc:
                log.info("could not delete %s in %s (%s); blanking it", message_id, self._key, exc)
                if self._shown[-1] != WITHDRAWN:
                    await self._channel.edit(self._key, message_id, WITHDRAWN)
            del self._ids[-1], self._shown[-1]

    async def _put(self, index: int, part: str) -> None:
        if index < len(self._ids):
            if self._shown[index] != part:
                await self._channel.edit(self._key, self._ids[index], part)
                self._shown[index] = part
            return
        reply_to = self._reply_to if index == 0 else None
        self._ids.append(await self._channel.send(self._key, part, reply_to=reply_to))
        self._shown.append(part)
        if self._on_sent is not None:
            await self._on_sent(list(self._ids))

    async def retract(self, stale: tuple[str, ...], notice: str) -> None:
        """Mark a reply an earlier process left half-shown (a crash cut it): its first
        message becomes `notice`, the others are deleted. Failures are only logged."""
        for index, message_id in enumerate(stale):
            try:
                if index == 0:
                    await self._channel.edit(self._key, message_id, notice)
                else:
                    await self._channel.delete(self._key, message_id)
            except HearthError as exc:  # the message may be gone already; the new answer follows anyway
                log.info("could not mark the cut reply %s in %s: %s", message_id, self._key, exc)
