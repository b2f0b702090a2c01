"""Keeping a conversation's messages in arrival order while the adapter decides whether to answer.

Updates are handled concurrently. The core answers a conversation's messages in
the order they reach it, so a handler hands its message over before its first
await. Deciding whether to answer an unmentioned group message takes one (a look
at the channel's mode): while it runs, later messages of that conversation queue
here, and each passes on in turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.messages import ConversationKey


class ArrivalOrder:
    """One decision at a time per conversation, first come first served (asyncio.Lock is FIFO)."""

    def __init__(self) -> None:
        self._locks: dict[ConversationKey, asyncio.Lock] = {}
        self._waiting: dict[ConversationKey, int] = {}

    @asynccontextmanager
    async def turn(self, key: ConversationKey) -> AsyncIterator[None]:
        """Decide inside the block; hand the message on right after it, with no await between.

        Neither entering a free turn nor leaving one suspends, so a conversation
        nobody is deciding about passes straight through."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:
                del self._waiting[key], self._locks[key]

    def __len__(self) -> int:
        """Conversations with a message being decided or waiting."""
        return len(self._locks)
