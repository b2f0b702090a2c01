"""Quotas in the pipeline: refused at intake, told once, charged after the reply."""

from __future__ import annotations

import math
from collections.abc import Callable

from bot import i18n
from bot.messages import IncomingMessage
from bot.metrics import Metrics
from bot.pipeline.turn import Handler, Turn
from bot.quotas import Quotas, Refusal
from bot.store import Conversations


class QuotaGate:
    """Rate limits and daily token quotas, in two stages sharing the notices to send.

    `__call__` (intake, after `Accept`, so the message is stored first): a message over
    a limit is marked `limited` and goes no further: nothing is queued for the model,
    no "typing…" is shown. Its author is told once per spell (`Quotas.notice_due`), not
    once per message; that one message is handed on so the notice goes out from the
    answering task, and a send (paced by the platform) never holds up intake.

    `answer` (the answer chain, right inside the boundary): sends a notice due, or
    passes the turn on and charges its reply's tokens to the author and the channel."""

    def __init__(
        self, quotas: Quotas, conversations: Conversations, metrics: Metrics,
        exempt: Callable[[IncomingMessage], bool],
    ) -> None:
        self._quotas = quotas
        self._conversations = conversations
        self._metrics = metrics
        self._exempt = exempt
        self._notices: dict[Turn, str] = {}

    async def __call__(self, turn: Turn, call_next: Handler) -> None:
        msg = turn.msg
        assert turn.message_id is not None, "Accept runs first"
        refusal = await self._quotas.admit(msg, exempt=self._exempt(msg))
        if refusal is None:
            await call_next(turn)
            return
        await self._conversations.set_status(turn.message_id, "limited")
        self._metrics.quota_refusals.labels(msg.platform, refusal.scope, refusal.kind).inc()
        self._metrics.refuse(msg.platform, refusal.reason)
        if self._quotas.notice_due(msg, refusal):
            self._notices[turn] = notice_text(refusal, turn.lang)
            await call_next(turn)

    async def answer(self, turn: Turn, call_next: Handler) -> None:
        notice = self._notices.pop(turn, None)
        if notice is not None:
            await turn.reply.finish(notice)
            return
        await call_next(turn)
        final = turn.answer.final if turn.answer is not None else None
        if final is not None:
            self._quotas.spend(turn.msg, final.prompt_tokens, final.cached_tokens, final.reply_tokens)


def notice_text(refusal: Refusal, lang: str) -> str:
    """The one short notice an author gets for `refusal`, in `lang`."""
    seconds = max(1, math.ceil(refusal.retry_after))
    return i18n.text(f"quota_{refusal.reason}", lang, seconds=seconds, limit=f"{refusal.limit:,}")
