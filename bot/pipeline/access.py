"""HEARTH_ACCESS in the pipeline and in front of commands: strangers are stored, counted, not answered."""

from __future__ import annotations

from bot import i18n
from bot.access import AccessPolicy
from bot.messages import IncomingMessage
from bot.metrics import Metrics
from bot.pipeline.turn import Handler, PendingNotices, Turn
from bot.store import Conversations

REFUSED = "access"  # the reason refusals are counted under (hearth_messages_refused_total)


class AccessGate:
    """Two stages, like `QuotaGate`. `__call__` (intake, after the message is stored and the
    rate limits counted it, so a stranger's flood is limited too): a message whose author
    may not talk to Hearth here is marked `denied` and counted; it goes no further, except
    that once per NOTICE_QUIET_S its place is told why (in a direct message under pairing:
    with the code to give an operator), from the answering task. `answer` sends that notice."""

    def __init__(self, policy: AccessPolicy, conversations: Conversations, metrics: Metrics) -> None:
        self._policy = policy
        self._conversations = conversations
        self._metrics = metrics
        self._notices = PendingNotices()
        self.answer = self._notices.answer

    async def __call__(self, turn: Turn, call_next: Handler) -> None:
        msg = turn.msg
        if await self._policy.allows(msg):
            await call_next(turn)
            return
        assert turn.message_id is not None, "Accept runs first"
        await self._conversations.set_status(turn.message_id, "denied")
        self._metrics.refuse(msg.platform, REFUSED)
        if self._policy.notice_due(msg):
            self._notices.due(turn, await refusal_text(self._policy, msg, turn.lang))
            await call_next(turn)


class AccessCommands:
    """A command gate (`bot.commands.table.CommandGate`): a stranger's command is counted
    and not run; they hear why once per NOTICE_QUIET_S, then nothing."""

    def __init__(self, policy: AccessPolicy, metrics: Metrics) -> None:
        self._policy = policy
        self._metrics = metrics

    async def __call__(self, msg: IncomingMessage, lang: str) -> str | None:
        if await self._policy.allows(msg):
            return None
        self._metrics.refuse(msg.platform, REFUSED)
        return await refusal_text(self._policy, msg, lang) if self._policy.notice_due(msg) else ""


async def refusal_text(policy: AccessPolicy, msg: IncomingMessage, lang: str) -> str:
    """Why `msg`'s author is not answered: with a pairing code where pairing applies."""
    if policy.pairs(msg):
        return i18n.text("access_pairing", lang, code=await policy.pairing_code(msg))
    return i18n.text("access_denied", lang)
