"""The one place an `IncomingMessage` becomes a reply: two chains of small stages.

    intake:  Boundary → CountIntake → Accept → QuotaGate          (stores it: awaited by the adapter)
    answer:  Boundary → CountAnswer → QuotaGate.answer → InputGate → Backlog → Degrade
             → PinnedModel → BuildPrompt → Generate → Record      (in a task the pipeline owns)

Intake returns as soon as the message is stored, so an adapter can confirm it to
the platform and take the next one; nothing waiting for its turn holds a
platform library's handler slot. The composition root (`bot.app`) builds the
stages and may add its own (quotas, metrics); each gets the turn and the next
handler.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from bot import i18n
from bot.errors import StoreUnavailableError
from bot.i18n import Locale
from bot.messages import ConversationKey, IncomingMessage, PendingMessage
from bot.pipeline.answer import BuildPrompt, Degrade, Generate, InputGate, PinnedModel, PromptLimits, Record
from bot.pipeline.intake import Accept, Boundary
from bot.pipeline.turn import Answer, Handler, Stage, Turn, chain
from bot.ports import ReplyChannel
from bot.store import Conversations
from bot.store.faults import patience
from bot.streaming import ReplyStream
from bot.tasks import TaskOwner

__all__ = [
    "Accept",
    "Answer",
    "Boundary",
    "BuildPrompt",
    "Degrade",
    "Generate",
    "Handler",
    "InputGate",
    "PinnedModel",
    "Pipeline",
    "PromptLimits",
    "Record",
    "Stage",
    "Turn",
    "chain",
]

log = logging.getLogger(__name__)


class Pipeline:
    """Answers messages: concurrently across conversations, in order within one (`Inbox`)."""

    def __init__(
        self, intake: Sequence[Stage], answer: Sequence[Stage], last: Handler, locale: Locale,
        conversations: Conversations, tasks: TaskOwner | None = None,
    ) -> None:
        self._answer = chain(answer, last)
        self._intake = chain(intake, self._start_answer)
        self._locale = locale
        self._conversations = conversations
        self._tasks = tasks or TaskOwner("answers")
        self._draining = False
        self._last_placed: dict[ConversationKey, asyncio.Future[None]] = {}  # see `_in_arrival_order`

    async def submit(self, msg: IncomingMessage, channel: ReplyChannel) -> asyncio.Task[None] | None:
        """Store `msg` and start answering it through `channel`. Returns once it is stored,
        with the task answering it (None for a duplicate, a refusal at intake, or while
        shutting down: then it stays pending and is answered after the next start).

        Raises StoreUnavailableError when the store could not take it (within
        `INTAKE_PATIENCE_S`): see `bot.ports.Inbox.submit`."""
        turn = self._turn(msg, channel)
        await self._intake(turn)
        return turn.task

    async def handle(self, msg: IncomingMessage, channel: ReplyChannel) -> None:
        """Answer `msg` through `channel`, returning when the reply is complete; never
        raises for a bad message or a failing engine."""
        task = await self.submit(msg, channel)
        if task is not None:
            await asyncio.wait([task])

    def resume(self, pending: PendingMessage, channel: ReplyChannel) -> asyncio.Task[None] | None:
        """Answer a message stored earlier and never answered (after a restart)."""
        turn = self._turn(pending.incoming(), channel)
        turn.message_id = pending.id
        self._spawn(turn, stale=pending.shown)
        return turn.task

    def withdraw(self, pending: PendingMessage, channel: ReplyChannel) -> asyncio.Task[None]:
        """Mark the reply a crash left half-shown for a message too old to answer now (after a
        restart; the message itself was skipped)."""
        turn = self._turn(pending.incoming(), channel)
        notice = i18n.text("interrupted_expired", turn.lang)
        name = f"withdraw-{pending.key}-{pending.id}"
        return self._tasks.spawn(self._mark_cut(turn, pending.shown, notice), name)

    def in_flight(self) -> int:
        """Replies being generated or waiting for their turn."""
        return len(self._tasks)

    async def drain(self, grace_s: float) -> None:
        """Shut down: answer nothing new; give replies in progress `grace_s` seconds to
        finish, then interrupt the rest (marked on screen and in the store)."""
        self._draining = True
        if not await self._tasks.wait(grace_s):
            log.info("replies still in progress, interrupted: %d", len(self._tasks))
        await self._tasks.close()

    def _turn(self, msg: IncomingMessage, channel: ReplyChannel) -> Turn:
        holder: list[Turn] = []

        async def note_shown(ids: list[str]) -> None:  # a crash then leaves findable traces
            if holder and holder[0].message_id is not None:
                try:
                    with patience(0):  # a trace never holds a reply up
                        await self._conversations.note_shown(holder[0].message_id, ids)
                except StoreUnavailableError as exc:
                    log.info("could not note the parts shown in %s: %s", msg.key, exc)

        stream = ReplyStream(channel, msg.key, reply_to=msg.message_id, on_sent=note_shown)
        holder.append(Turn(msg, stream, self._locale.of_message(msg)))
        return holder[0]

    async def _start_answer(self, turn: Turn) -> None:
        self._spawn(turn)

    def _spawn(self, turn: Turn, stale: tuple[str, ...] = ()) -> None:
        if self._draining:
            log.info("message %s in %s kept for after the restart", turn.message_id, turn.msg.key)
            return
        name = f"answer-{turn.msg.key}-{turn.message_id}"
        self._in_arrival_order(turn)
        turn.task = self._tasks.spawn(self._run_answer(turn, stale), name)
        # Ended before the queue (refused, failed, cancelled, even before it ever ran): the next goes on.
        turn.task.add_done_callback(lambda _: turn.place())

    def _in_arrival_order(self, turn: Turn) -> None:
        """Chain `turn` behind the turn spawned before it in its conversation: the stages
        before the queue take longer for some messages (a cut reply marked first, a long
        text judged), and none may overtake an earlier one there."""
        key = turn.msg.key
        turn.ahead = self._last_placed.get(key)
        turn.placed = placed = asyncio.get_running_loop().create_future()
        self._last_placed[key] = placed

        def forget(done: asyncio.Future[None]) -> None:
            if self._last_placed.get(key) is done:
                del self._last_placed[key]

        placed.add_done_callback(forget)

    async def _run_answer(self, turn: Turn, stale: tuple[str, ...]) -> None:
        if stale:
            await self._mark_cut(turn, stale, i18n.text("interrupted_restart", turn.lang))
        await self._answer(turn)

    async def _mark_cut(self, turn: Turn, shown: tuple[str, ...], notice: str) -> None:
        """Mark a reply a crash cut (see `ReplyStream.retract`)."""
        try:
            await turn.reply.retract(shown, notice)
        except Exception:  # an adapter's own bug: logged; the message is still answered
            log.exception("could not mark the reply a crash cut in %s", turn.msg.key)
