"""A group upgraded to a supergroup: the chat gets a new id, and what Hearth keeps follows it.

Telegram tells in up to three ways, in any order: a `migrate_to_chat_id` service
message in the old group, a `migrate_from_chat_id` one in the new supergroup, and
a send to the old id refused with ChatMigrated. Each moves everything stored
under the old id (`ChannelMoves`, idempotent, so hearing it again costs nothing)
and the admin cache, and from then on sends to the old id go to the new one.
"""

from __future__ import annotations

import logging
from typing import Protocol

from telegram import Message

from adapters.telegram.admins import AdminCache
from adapters.telegram.incoming import PLATFORM

log = logging.getLogger(__name__)

MAX_HOPS = 8  # a chat that keeps moving (it cannot, today) is followed this far


class ChannelMoves(Protocol):
    """Where the adapter reports a chat's new id: the store's `move_channel`, wrapped by
    the composition root so the moderation gate re-reads the admin words it moved."""

    async def move_channel(self, platform: str, old_channel: str, new_channel: str) -> bool: ...


def migration_of(message: Message) -> tuple[int, int] | None:
    """(old chat id, new chat id) when `message` announces an upgrade, else None."""
    if message.migrate_to_chat_id:
        return message.chat.id, message.migrate_to_chat_id
    if message.migrate_from_chat_id:
        return message.migrate_from_chat_id, message.chat.id
    return None


class Migrations:
    """The upgrades heard since start, and the moving they cause."""

    def __init__(self, moves: ChannelMoves | None, admins: AdminCache) -> None:
        self._moves = moves
        self._admins = admins
        self._to: dict[int, int] = {}

    def chat_of(self, chat_id: int) -> int:
        """Where a message for `chat_id` goes now: its newest id."""
        for _ in range(MAX_HOPS):
            if chat_id not in self._to:
                break
            chat_id = self._to[chat_id]
        return chat_id

    async def moved(self, old: int, new: int) -> int:
        """`old` is now `new`: follow it, and move what is kept under `old`; returns `new`."""
        if old == new:
            return new
        if old not in self._to:
            log.info("Telegram chat %s is now %s (a group upgraded to a supergroup)", old, new)
        self._to[old] = new
        self._admins.move(old, new)
        if self._moves is not None:
            await self._moves.move_channel(PLATFORM, str(old), str(new))
        return new
