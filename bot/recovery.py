"""After a restart: answer, once, what a crash or a shutdown left unanswered.

A user message is stored `pending` before anything else happens to it and only
leaves that state when it is answered, refused or fails. At start-up, pending
messages younger than the window (HEARTH_RECOVER_WINDOW_S) are answered again,
in order per conversation; older ones are marked `skipped`, so they never enter
a later prompt and are never answered out of the blue hours later. Processes
sharing one store claim what they answer (`claim_pending`), so none is answered twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from bot.messages import PendingMessage
from bot.ports import ReplyChannel
from bot.store import Conversations

log = logging.getLogger(__name__)


class Resumer(Protocol):
    def resume(self, pending: PendingMessage, channel: ReplyChannel) -> object: ...

    def withdraw(self, pending: PendingMessage, channel: ReplyChannel) -> object: ...


@dataclass(frozen=True, slots=True)
class Recovered:
    """What start-up found: messages answered again, and messages too old (or for a
    platform not running now) that were skipped."""

    resumed: int
    skipped: int


class Recovery:
    """Finds pending messages at start-up and hands them back to the pipeline."""

    def __init__(
        self, conversations: Conversations, pipeline: Resumer, window_s: float, owner: str = "hearth",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._conversations = conversations
        self._pipeline = pipeline
        self._window_s = window_s
        self._owner = owner
        self._clock = clock

    async def run(self, channels: Mapping[str, ReplyChannel]) -> Recovered:
        """Resume every recent pending message on its platform's channel; skip the rest (a
        reply a crash left half-shown for a skipped one is marked, not left hanging)."""
        since = self._clock() - self._window_s
        cut = [p for p in await self._conversations.pending(0) if p.created_at < since and p.shown]
        skipped = await self._conversations.skip_pending(before=since)
        for pending in cut:
            if (channel := channels.get(pending.key.platform)) is not None:
                self._pipeline.withdraw(pending, channel)
        resumed = 0
        for pending in await self._conversations.claim_pending(since, self._owner):
            channel = channels.get(pending.key.platform)
            if channel is None:
                await self._conversations.set_status(pending.id, "skipped")
                skipped += 1
                continue
            self._pipeline.resume(pending, channel)
            resumed += 1
        if resumed or skipped:
            log.warning("after the restart: messages left unanswered, answered now: %d; "
                        "older ones skipped: %d", resumed, skipped)
        return Recovered(resumed, skipped)
