"""The pipeline's one shape: a stage gets a turn and the next handler (like aiogram's
`BaseMiddleware`), does its part, and calls the next one or stops the chain."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.context import Prompt
from bot.messages import IncomingMessage, Verdict
from bot.streaming import ReplyStream
from engine.types import ReplyChunk


@dataclass(frozen=True, slots=True)
class Answer:
    """What the model's reply came to: the text to store, its verdict, and the engine's
    final chunk (token counts), None when the reply was refused or cut."""

    text: str
    verdict: Verdict
    final: ReplyChunk | None


@dataclass(slots=True, eq=False)
class Turn:
    """One message on its way through the stages; each stage fills in what it learns."""

    msg: IncomingMessage
    reply: ReplyStream
    lang: str
    message_id: int | None = None
    prompt: Prompt | None = None
    answer: Answer | None = None
    task: asyncio.Task[None] | None = None
    shrink: int = 0  # times the prompt and reply budgets were cut for lack of memory (`Degrade`)
    undelivered: str | None = None  # the final text, when the platform would not take it (`Generate`)
    # Arrival order in its conversation (`Pipeline`): the turn before it is placed in the
    # conversation's queue (or ended) before this one may be.
    ahead: asyncio.Future[None] | None = None
    placed: asyncio.Future[None] | None = None

    async def take_place(self) -> None:
        """Wait until the turn that arrived before this one in its conversation was placed in
        the queue or ended, then count as placed: the caller places it before it next awaits."""
        if self.ahead is not None and not self.ahead.done():
            await asyncio.wait([self.ahead])  # never cancels `ahead` when this turn is cancelled
        self.place()

    def place(self) -> None:
        """This turn was placed in its conversation's queue, or ended before it got there."""
        if self.placed is not None and not self.placed.done():
            self.placed.set_result(None)


Handler = Callable[[Turn], Awaitable[None]]


class PendingNotices:
    """Notices a gate decided at intake and sends from the answering task: a platform's
    pacing never holds up intake (`bot.pipeline.access.AccessGate`, `bot.pipeline.quota.QuotaGate`)."""

    def __init__(self) -> None:
        self._notices: dict[Turn, str] = {}

    def due(self, turn: Turn, text: str) -> None:
        """`text` is sent to `turn`'s place instead of an answer."""
        self._notices[turn] = text

    async def answer(self, turn: Turn, call_next: Handler) -> None:
        """The answer-chain stage: the notice due for `turn`, or the turn passed on."""
        notice = self._notices.pop(turn, None)
        if notice is not None:
            await turn.reply.finish(notice)
            return
        await call_next(turn)


class Stage(Protocol):
    """One step of answering a message. Calling `call_next` passes the turn on;
    returning without calling it ends the turn there (a duplicate, a refusal)."""

    async def __call__(self, turn: Turn, call_next: Handler) -> None: ...


def chain(stages: Sequence[Stage], last: Handler) -> Handler:
    """`stages[0]` outermost, then each in order, ending in `last`."""
    handler = last
    for stage in reversed(stages):
        handler = _bind(stage, handler)
    return handler


def _bind(stage: Stage, call_next: Handler) -> Handler:
    async def handle(turn: Turn) -> None:
        await stage(turn, call_next)

    return handle
