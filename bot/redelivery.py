"""Delivering, once the platform is back, the replies it would not take.

A reply generated in full whose platform failed for now (5xx, 429, a dropped
connection) is stored `undelivered` with the text to show and the parts already
posted (see `bot.pipeline.answer.Record`); its question counts as answered. This
worker, one per process, delivers each such reply of its own, oldest first: the
parts already posted (a reply cut after one word) are edited to the full text, the
rest posted, each new part noted at once (so a crash here re-posts nothing), then
the reply is `answered`. A platform still failing is retried with backoff
(`RETRY_S`); a conversation waits behind its oldest undelivered reply, so its order
holds. Replies older than the recovery window (HEARTH_RECOVER_WINDOW_S) are
`skipped` instead: a late answer hours later confuses more than it helps. Runs
from start-up, so replies an earlier run left undelivered are finished too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from bot.errors import DeliveryError, StoreUnavailableError
from bot.messages import ConversationKey, Undelivered
from bot.ports import ReplyChannel
from bot.store import Conversations
from bot.store.faults import patience
from bot.streaming import ReplyStream

log = logging.getLogger(__name__)

RETRY_S = (1.0, 2.0, 5.0, 10.0, 15.0)  # between rounds while a platform still fails; the last repeats


class Redelivery:
    """Finishes undelivered replies of `owner` (HEARTH_INSTANCE_NAME) within `window_s`."""

    def __init__(
        self, conversations: Conversations, window_s: float, owner: str,
        clock: Callable[[], float] = time.time, retry_s: tuple[float, ...] = RETRY_S,
    ) -> None:
        self._conversations = conversations
        self._window_s = window_s
        self._owner = owner
        self._clock = clock
        self._retry_s = retry_s
        self._wanted = asyncio.Event()
        self.delivered = 0

    def wake(self) -> None:
        """A reply was just stored undelivered: look again soon."""
        self._wanted.set()

    async def run(self, channels: Mapping[str, ReplyChannel]) -> None:
        """Deliver until cancelled: at start (an earlier run may have left some), then
        whenever woken, and every `retry_s` while some still wait."""
        self._wanted.set()
        failures = 0
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            if await self.deliver(channels):
                await asyncio.sleep(self._retry_s[min(failures, len(self._retry_s) - 1)])
                failures += 1
                self._wanted.set()
            else:
                failures = 0

    async def deliver(self, channels: Mapping[str, ReplyChannel]) -> int:
        """One round over every undelivered reply; how many still wait for their platform."""
        since = self._clock() - self._window_s
        if skipped := await self._conversations.expire_undelivered(before=since):
            log.warning("replies undelivered for longer than %.0f s, skipped: %d", self._window_s, skipped)
        waiting = 0
        blocked: set[ConversationKey] = set()
        for reply in await self._conversations.undelivered(since, self._owner):
            channel = channels.get(reply.key.platform)
            if channel is None or reply.key in blocked:
                waiting += channel is not None
                continue
            if not await self._deliver_one(reply, channel):
                blocked.add(reply.key)
                waiting += 1
        return waiting

    async def _deliver_one(self, reply: Undelivered, channel: ReplyChannel) -> bool:
        """Whether `reply` is delivered (or given up for good); False: try again later."""

        async def noted(ids: list[str]) -> None:  # a crash after this re-posts nothing
            try:
                with patience(0):
                    await self._conversations.note_shown(reply.id, ids)
            except StoreUnavailableError as exc:
                log.info("could not note the parts of reply %d: %s", reply.id, exc)

        stream = ReplyStream(channel, reply.key, reply_to=reply.reply_to, on_sent=noted, shown=reply.shown)
        try:
            await stream.finish(reply.text)
        except DeliveryError as exc:
            if exc.transient:
                log.info("reply %d in %s still undelivered: %s", reply.id, reply.key, exc)
                return False
            log.warning("reply %d in %s cannot be delivered (%s); given up", reply.id, reply.key, exc)
            await self._conversations.set_status(reply.id, "skipped")
            return True
        if stream.message_ids:
            await self._conversations.mark_delivered(reply.id, stream.message_ids[0])
        else:  # nothing to show (cannot happen for a stored reply, which has text)
            await self._conversations.set_status(reply.id, "skipped")
        self.delivered += 1
        log.info("delivered reply %d in %s after the platform came back", reply.id, reply.key)
        return True
