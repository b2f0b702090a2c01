"""The outer stages: the error boundary, storing on arrival, one turn at a time per conversation."""

from __future__ import annotations

import dataclasses
import logging

from bot.boundary import ErrorBoundary
from bot.errors import MessageTooLongError
from bot.messages import IncomingMessage
from bot.pipeline.turn import Handler, Turn
from bot.store import Conversations

log = logging.getLogger(__name__)

HARD_CAP_CHARS = 1_000_000  # the most of one message the store keeps


class Boundary:
    """Outermost: whatever fails inside becomes a short reply in the user's language,
    and the message is marked `failed`, so it never enters a later prompt."""

    def __init__(self, boundary: ErrorBoundary, conversations: Conversations) -> None:
        self._boundary = boundary
        self._conversations = conversations

    async def __call__(self, turn: Turn, call_next: Handler) -> None:
        try:
            await call_next(turn)
        except Exception as exc:  # the outer boundary: every failure becomes a reply
            text = self._boundary.reply_for(exc, turn.msg)
            try:
                if turn.message_id is not None:
                    await self._conversations.set_status(turn.message_id, "failed")
                await turn.reply.finish(text)
            except Exception:  # the platform or the store itself is failing; the log is all we have
                log.exception("could not deliver an error reply in %s", turn.msg.key)


class Accept:
    """Store the user message at once, so a crash loses nothing; drop a duplicate delivery.

    A message over `max_chars` (HEARTH_MAX_MESSAGE_CHARS) is stored too, up to
    `hard_cap` characters, then refused with the "too long" reply. It is stored
    claimed by `owner` (this process), so no other process sharing the store answers it."""

    def __init__(
        self, conversations: Conversations, max_chars: int, owner: str | None = None,
        hard_cap: int = HARD_CAP_CHARS,
    ) -> None:
        self._conversations = conversations
        self._max_chars = max_chars
        self._owner = owner
        self._hard_cap = max(hard_cap, max_chars)

    async def __call__(self, turn: Turn, call_next: Handler) -> None:
        turn.msg = msg = _storable(turn.msg)
        turn.message_id = await self._conversations.add_message(
            msg.key, "user", msg.text[: self._hard_cap],
            author_id=msg.author_id, author_name=msg.author_name, platform_message_id=msg.message_id,
            meta={"direct": msg.is_direct, "channel_name": msg.channel_name}, owner=self._owner,
        )
        if turn.message_id is None:
            log.info("duplicate delivery of %s in %s ignored", msg.message_id, msg.key)
            return
        if len(msg.text) > self._max_chars:
            raise MessageTooLongError(len(msg.text), self._max_chars)
        await call_next(turn)


def _storable(msg: IncomingMessage) -> IncomingMessage:
    """`msg` with every lone surrogate (Telegram's JSON can carry `\\ud800`; UTF-8 cannot
    store it) replaced by U+FFFD. Pairs are joined back into the character they encode."""
    text = msg.text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if text == msg.text:
        return msg
    log.warning("message %s in %s had %d lone surrogates; stored as U+FFFD",
                msg.message_id, msg.key, sum(1 for c in msg.text if "\ud800" <= c <= "\udfff"))
    return dataclasses.replace(msg, text=text)
