"""The ports the core declares and the outside implements.

Adapters implement `ReplyChannel` (how a reply reaches a platform) and call the
core through `Inbox` (messages) and `bot.commands.Commands` (commands). The core
never imports an adapter: it is handed objects that fit these shapes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bot.messages import ConversationKey, IncomingMessage
from bot.splitting import Measure


@dataclass(frozen=True, slots=True)
class ReplyLimits:
    """A platform's message length rule and how often a streamed reply may be edited.

    `max_chars` is measured by `measure` (Telegram counts UTF-16 code units);
    `edit_interval` is in seconds."""

    max_chars: int
    edit_interval: float
    measure: Measure = len
    spoiler: Callable[[str], str] | None = None  # hides text until clicked (Discord's ||…||)


class ReplyChannel(Protocol):
    """Where replies go: post, edit and delete messages on one platform."""

    @property
    def limits(self) -> ReplyLimits: ...

    async def send(self, key: ConversationKey, text: str, *, reply_to: str | None = None) -> str:
        """Post a new message and return its platform id.

        Raises `bot.errors.DeliveryError` when the platform does not take it."""
        ...

    async def edit(self, key: ConversationKey, message_id: str, text: str) -> None:
        """Replace the text of a message this channel sent (DeliveryError on failure)."""
        ...

    async def delete(self, key: ConversationKey, message_id: str) -> None:
        """Remove a message this channel sent (DeliveryError on failure)."""
        ...


class Inbox(Protocol):
    """What an adapter hands every message addressed to the bot."""

    async def submit(self, msg: IncomingMessage, channel: ReplyChannel) -> asyncio.Task[None] | None:
        """Store `msg` and start answering it through `channel`; returns once it is stored
        (so the platform may be told it was received), with the task answering it, or
        None when nothing more will happen now (a duplicate, a refusal, shutting down).

        Raises `bot.errors.StoreUnavailableError` when the message could not be committed
        (after a short bounded retry): the platform must not be told it arrived (Telegram:
        the offset stays; a webhook: a 5xx), or it must be journalled where the platform
        cannot be un-acknowledged (Discord: `bot.journal`)."""
        ...

    async def handle(self, msg: IncomingMessage, channel: ReplyChannel) -> None:
        """Answer `msg` through `channel`, returning when the reply is complete; never
        raises for a bad message or a failing engine."""
        ...
