"""Waiting for a turn: one reply at a time per conversation, a bounded wait, a cap per channel."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

from bot.messages import ConversationKey
from bot.metrics import Metrics
from bot.pipeline.turn import Handler, Turn
from bot.store import Conversations


@dataclass(slots=True, eq=False)
class _Waiting:
    """An author's one message waiting in a conversation, and the earlier ones merged into it."""

    turn: Turn
    ready: asyncio.Future[bool]  # True: its turn came; False: a newer message took its place
    merged: list[int] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class _Line:
    waiting: OrderedDict[str, _Waiting] = field(default_factory=OrderedDict)  # author → theirs, in order


@dataclass(slots=True, eq=False)
class _Channel:
    slots: asyncio.Semaphore
    users: int = 0


class Backlog:
    """One reply at a time per conversation, in arrival order; at most `per_channel`
    replies at once per channel (its threads share them), so one busy channel cannot
    take the whole engine; and a wait that a flood cannot grow.

    While a conversation's reply is generated, each author has at most one message
    waiting in it. A newer message from the same author takes the waiting one's place,
    at the back of the line (turns stay in arrival order, and an author who keeps
    sending waits behind the others), and one reply answers both: the earlier one ends
    `merged` (it stays in the prompt). At most `merge_limit` messages go into one
    reply; past that the oldest waiting one ends `dropped` (kept, left out of prompts).
    So a conversation holds one waiting task and `merge_limit` messages per author,
    whatever the rate. The input gate runs before this stage: every merged message was
    judged on its own."""

    def __init__(
        self, conversations: Conversations, metrics: Metrics, merge_limit: int = 5, per_channel: int = 4
    ) -> None:
        self._conversations = conversations
        self._metrics = metrics
        self._merge_limit = merge_limit
        self._per_channel = per_channel
        self._lines: dict[ConversationKey, _Line] = {}
        self._channels: dict[tuple[str, str], _Channel] = {}

    async def __call__(self, turn: Turn, call_next: Handler) -> None:
        key = turn.msg.key
        await turn.take_place()  # in arrival order, however long the stages before took
        line = self._lines.get(key)
        merged: list[int] = []
        if line is None:
            line = self._lines[key] = _Line()
        else:
            entry = await self._wait(line, turn)
            if entry is None:
                return  # merged into the author's newer message, whose reply answers both
            merged = entry.merged
        try:
            await self._settle(turn, merged, "merged")
            async with self._channel_slot(key):
                await call_next(turn)
        finally:
            self._next(key, line)

    def depth(self) -> int:
        """Replies to come: conversations answering now, and turns waiting in them."""
        return sum(1 + len(line.waiting) for line in self._lines.values())

    async def _wait(self, line: _Line, turn: Turn) -> _Waiting | None:
        """Wait for `turn`'s go; None when a newer message of its author took its place."""
        author, message_id = turn.msg.author_id, turn.message_id or 0
        earlier = line.waiting.get(author)
        if earlier is not None and (earlier.turn.message_id or 0) > message_id:
            # Stored before the one waiting, it got here after it (the input gate took longer).
            earlier.merged = sorted([*earlier.merged, message_id])
            await self._settle(turn, self._over_bound(earlier), "dropped")
            return None
        entry = _Waiting(turn, asyncio.get_running_loop().create_future())
        if earlier is not None:
            del line.waiting[author]
            earlier.ready.set_result(False)
            entry.merged = [*earlier.merged, earlier.turn.message_id or 0]
        line.waiting[author] = entry  # no await since the lookup: the line never looks empty
        dropped = self._over_bound(entry)
        try:
            await self._settle(turn, dropped, "dropped")
            go = await entry.ready
        except asyncio.CancelledError:
            if line.waiting.get(author) is entry:
                del line.waiting[author]
            elif entry.ready.done() and not entry.ready.cancelled() and entry.ready.result():
                self._next(turn.msg.key, line)  # given the go as it was cancelled: pass it on
            raise
        return entry if go else None

    def _over_bound(self, entry: _Waiting) -> list[int]:
        """Take out of `entry` the oldest merged messages past the bound: they are dropped."""
        dropped = entry.merged[: max(0, len(entry.merged) - (self._merge_limit - 1))]
        del entry.merged[: len(dropped)]
        return dropped

    async def _settle(self, turn: Turn, ids: list[int], status: Literal["merged", "dropped"]) -> None:
        for message_id in ids:
            await self._conversations.set_status(message_id, status)
            self._metrics.labelled(self._metrics.queued, turn.msg.platform, status).inc()

    def _next(self, key: ConversationKey, line: _Line) -> None:
        """The conversation's reply is done: give the go to the first turn waiting."""
        while line.waiting:
            _, entry = line.waiting.popitem(last=False)
            if not entry.ready.done():
                entry.ready.set_result(True)
                return
        if self._lines.get(key) is line:
            del self._lines[key]

    @asynccontextmanager
    async def _channel_slot(self, key: ConversationKey) -> AsyncIterator[None]:
        name = (key.platform, key.channel)
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel(asyncio.Semaphore(self._per_channel))
        channel.users += 1
        try:
            async with channel.slots:
                yield
        finally:
            channel.users -= 1
            if not channel.users:
                del self._channels[name]
