"""The outer stages: the error boundary, storing on arrival, one turn at a time per conversation."""

from __future__ import annotations

import dataclasses
import logging

from bot.boundary import ErrorBoundary
from bot.errors import HearthError, MessageTooLongError, StoreUnavailableError
from bot.messages import IncomingMessage
from bot.pipeline.turn import Handler, Turn
from bot.store import Conversations
from bot.store.faults import patience

log = logging.getLogger(__name__)

HARD_CAP_CHARS = 1_000_000  # the most of one message the store keeps
# How long intake keeps trying to store a message before its platform is told no
# (seconds): the platform then keeps it (Telegram) or it is journalled (Discord).
INTAKE_PATIENCE_S = 3.0


class Boundary:
    """Outermost: whatever fails inside becomes a short reply in the user's language,
    and the message is marked `failed`, so it never enters a later prompt.

    Except a message the store could not take (StoreUnavailableError before it was
    stored): nothing failed that the user should hear of. It is raised on, so the
    adapter does not acknowledge it (and the platform delivers it again) or journals it."""

    def __init__(self, boundary: ErrorBoundary, conversations: Conversations) -> None:
        self._boundary = boundary
        self._conversations = conversations

    async def __call__(self, turn: Turn, call_next: Handler) -> None:
        try:
            await call_next(turn)
        except Exception as exc:  # the outer boundary: every failure becomes a reply
            if isinstance(exc, StoreUnavailableError) and turn.message_id is None:
                raise  # not stored, so not ours yet: the platform keeps it
            await self._fail(turn, exc)

    async def _fail(self, turn: Turn, exc: Exception) -> None:
        text = self._boundary.reply_for(exc, turn.msg, lang=turn.lang)
        try:
            if turn.message_id is not None:
                await self._conversations.set_status(turn.message_id, "failed")
            await turn.reply.finish(text)
        except HearthError as failed:  # the platform refused it, or the store is failing: one line
            log.warning("could not deliver an error reply in %s: %s", turn.msg.key, failed)
        except Exception:  # anything else is a bug; the log is all we have
            log.exception("could not deliver an error reply in %s", turn.msg.key)


class Accept:
    """Store the user message at once, so a crash loses nothing; drop a duplicate delivery.

    A message over `max_chars` (HEARTH_MAX_MESSAGE_CHARS) is stored too, up to
    `hard_cap` characters, then refused with the "too long" reply. It is stored
    claimed by `owner` (this process), so no other process sharing the store answers it.
    Storing gives up after `patience_s` seconds of a failing store (StoreUnavailableError:
    see `Boundary`); once stored, the rest of the turn waits for the store as long as it takes."""

    def __init__(
        self, conversations: Conversations, max_chars: int, owner: str | None = None,
        hard_cap: int = HARD_CAP_CHARS, patience_s: float = INTAKE_PATIENCE_S,
    ) -> None:
        self._conversations = conversations
        self._patience_s = patience_s
        self._max_chars = max_chars
        self._owner = owner
        self._hard_cap = max(hard_cap, max_chars)

    async def __call__(self, turn: Turn, call_next: Handler) -> None:
        turn.msg = msg = _storable(turn.msg)
        with patience(self._patience_s):
            turn.message_id = await self._conversations.add_message(
                msg.key, "user", msg.turn_text[: self._hard_cap],
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
    store it) replaced by U+FFFD, in its text and in the message it quotes. Pairs are
    joined back into the character they encode."""
    text = _without_lone_surrogates(msg.text)
    quote = msg.quote and dataclasses.replace(msg.quote, text=_without_lone_surrogates(msg.quote.text))
    if text == msg.text and quote == msg.quote:
        return msg
    log.warning("message %s in %s had %d lone surrogates; stored as U+FFFD", msg.message_id, msg.key,
                sum(1 for c in msg.turn_text if "\ud800" <= c <= "\udfff"))
    return dataclasses.replace(msg, text=text, quote=quote)


def _without_lone_surrogates(text: str) -> str:
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
