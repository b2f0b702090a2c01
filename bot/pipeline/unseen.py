"""A message with only media the model cannot see is told so, instead of silence."""

from __future__ import annotations

from bot import i18n
from bot.pipeline.turn import Handler, Turn
from bot.store import Conversations


class Unseen:
    """A photo, a voice message, a sticker… with no words (no caption): nothing the model
    could answer. Its author gets a short notice in their language (`media_unseen`), the
    message is kept as `unseen` (never in a prompt) and the model is not called. Media
    with words goes on: the words are answered, and the model is told what it cannot
    see (`IncomingMessage.turn_text`)."""

    def __init__(self, conversations: Conversations) -> None:
        self._conversations = conversations

    async def __call__(self, turn: Turn, call_next: Handler) -> None:
        if not turn.msg.only_unseen:
            await call_next(turn)
            return
        assert turn.message_id is not None, "Accept runs first"
        await self._conversations.set_status(turn.message_id, "unseen")
        await turn.reply.finish(i18n.text("media_unseen", turn.lang))
