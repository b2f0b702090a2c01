"""Quotas in the pipeline: refused at intake, told once, tokens held while the reply is
generated and charged after it; and the same rate limits in front of every command."""

from __future__ import annotations

import math
from collections.abc import Callable

from bot import i18n
from bot.messages import IncomingMessage
from bot.metrics import Metrics
from bot.pipeline.turn import Handler, PendingNotices, Turn
from bot.quotas import Quotas, Refusal
from bot.quotas.policy import Reservation
from bot.store import Conversations


class QuotaGate:
    """Rate limits and daily token quotas, in two stages sharing the notices to send.

    `__call__` (intake, after `Accept`, so the message is stored first): a message over
    a limit is marked `limited` and goes no further: nothing is queued for the model,
    no "typing…" is shown. Its author is told once per spell (`Quotas.notice_due`), not
    once per message; that one message is handed on so the notice goes out from the
    answering task, and a send (paced by the platform) never holds up intake.

    `answer` (the answer chain, right inside the boundary): sends a notice due, or
    passes the turn on.

    `reserve` (the answer chain, once the prompt is built, right before generating):
    holds the prompt's tokens and `reply_tokens` (the most a reply may take) against the
    author's and the channel's daily quotas, refusing the turn when another reply took
    what was left meanwhile; then charges what the reply really spent."""

    def __init__(
        self, quotas: Quotas, conversations: Conversations, metrics: Metrics,
        exempt: Callable[[IncomingMessage], bool], reply_tokens: int = 0,
    ) -> None:
        self._quotas = quotas
        self._conversations = conversations
        self._metrics = metrics
        self._exempt = exempt
        self._reply_tokens = reply_tokens
        self._notices = PendingNotices()
        self.answer = self._notices.answer

    async def __call__(self, turn: Turn, call_next: Handler) -> None:
        msg = turn.msg
        assert turn.message_id is not None, "Accept runs first"
        refusal = await self._quotas.admit(msg, exempt=self._exempt(msg))
        if refusal is None:
            await call_next(turn)
            return
        await self._limited(turn, refusal)
        if self._quotas.notice_due(msg, refusal):
            self._notices.due(turn, notice_text(refusal, turn.lang))
            await call_next(turn)

    async def reserve(self, turn: Turn, call_next: Handler) -> None:
        assert turn.prompt is not None, "BuildPrompt runs first"
        msg = turn.msg
        exempt = self._exempt(msg)
        refusal = None if exempt else await self._quotas.token_refusal(msg)
        if refusal is not None:  # others' replies took what was left since intake
            await self._limited(turn, refusal)
            await turn.reply.finish(notice_text(refusal, turn.lang))
            return
        held = self._quotas.reserve(msg, 0 if exempt else turn.prompt.tokens + self._reply_tokens)
        try:
            await call_next(turn)
        finally:
            self._settle(turn, held)

    def _settle(self, turn: Turn, held: Reservation) -> None:
        final = turn.answer.final if turn.answer is not None else None
        if final is None:
            self._quotas.settle(held)
        else:
            self._quotas.settle(held, final.prompt_tokens, final.cached_tokens, final.reply_tokens)

    async def _limited(self, turn: Turn, refusal: Refusal) -> None:
        """Mark the message `limited` and count the refusal."""
        assert turn.message_id is not None, "Accept runs first"
        await self._conversations.set_status(turn.message_id, "limited")
        metrics = self._metrics
        metrics.labelled(metrics.quota_refusals, turn.msg.platform, refusal.scope, refusal.kind).inc()
        self._metrics.refuse(turn.msg.platform, refusal.reason)


class CommandQuota:
    """A command gate (`bot.commands.table.CommandGate`): commands count against the rate
    limits messages have, admins exempt as for messages. A refused command gets the same
    one notice per spell as a message, then nothing at all (`""`): a flood of commands
    then costs the chat no messages, and the others' replies no delay."""

    def __init__(self, quotas: Quotas, metrics: Metrics, exempt: Callable[[IncomingMessage], bool]) -> None:
        self._quotas = quotas
        self._metrics = metrics
        self._exempt = exempt

    async def __call__(self, msg: IncomingMessage, lang: str) -> str | None:
        refusal = await self._quotas.admit_command(msg, exempt=self._exempt(msg))
        if refusal is None:
            return None
        self._metrics.labelled(self._metrics.quota_refusals, msg.platform, refusal.scope, refusal.kind).inc()
        self._metrics.refuse(msg.platform, refusal.reason)
        return notice_text(refusal, lang) if self._quotas.notice_due(msg, refusal) else ""


def notice_text(refusal: Refusal, lang: str) -> str:
    """The one short notice an author gets for `refusal`, in `lang`."""
    seconds = max(1, math.ceil(refusal.retry_after))
    return i18n.text(f"quota_{refusal.reason}", lang, seconds=seconds, limit=f"{refusal.limit:,}")
