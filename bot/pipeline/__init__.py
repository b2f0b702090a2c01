"""The one place an `IncomingMessage` becomes a reply: a chain of small stages.

    Boundary → Accept → InOrder → InputGate → BuildPrompt → Generate → Record

The composition root (`bot.app`) builds the stages and may add its own (quotas,
metrics); each stage gets the turn and the next handler.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.i18n import Locale
from bot.messages import IncomingMessage
from bot.pipeline.answer import Answer, BuildPrompt, Generate, InputGate, PromptLimits, Record
from bot.pipeline.intake import Accept, Boundary, InOrder
from bot.pipeline.turn import Handler, Stage, Turn, chain
from bot.ports import ReplyChannel
from bot.streaming import ReplyStream

__all__ = [
    "Accept", "Answer", "Boundary", "BuildPrompt", "Generate", "Handler", "InOrder", "InputGate",
    "Pipeline", "PromptLimits", "Record", "Stage", "Turn", "chain",
]


class Pipeline:
    """Answers messages: concurrently across conversations, in order within one (`Inbox`)."""

    def __init__(self, stages: Sequence[Stage], last: Handler, locale: Locale) -> None:
        self._handler = chain(stages, last)
        self._locale = locale

    async def handle(self, msg: IncomingMessage, channel: ReplyChannel) -> None:
        """Answer `msg` through `channel`; never raises for a bad message or a failing engine."""
        stream = ReplyStream(channel, msg.key, reply_to=msg.message_id)
        await self._handler(Turn(msg, stream, self._locale.of(msg.text)))
