"""Who may steer Hearth in a Telegram group: the chat's administrators and creator.

The command table decides what each command needs (`bot.commands`); this only
says whether a message's author is an admin of the group it was sent in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from telegram import Bot, Message
from telegram.constants import ChatMemberStatus
from telegram.error import TelegramError

from adapters.telegram.incoming import PLATFORM, Sender, is_private, sender_of

log = logging.getLogger(__name__)

ADMIN_STATUSES = frozenset({ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER})
MAX_ENTRIES = 4096


class AdminCache:
    """Asks Telegram (getChatMember) at most once per `ttl` seconds per chat and user."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[tuple[int, int], tuple[float, bool]] = {}

    async def is_admin(self, bot: Bot, chat_id: int, user_id: int) -> bool:
        now = self._clock()
        cached = self._entries.get((chat_id, user_id))
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        try:
            member = await bot.get_chat_member(chat_id, user_id)
        except TelegramError as exc:  # not cached: the next command asks again
            log.warning("could not check whether %s administers chat %s: %s", user_id, chat_id, exc)
            return False
        admin = member.status in ADMIN_STATUSES
        self._remember((chat_id, user_id), now, admin)
        return admin

    def move(self, old_chat: int, new_chat: int) -> None:
        """The group became a supergroup (a new id): its admins are still its admins. What
        the new id has already is newer and stays."""
        for chat, user in [k for k in self._entries if k[0] == old_chat]:
            entry = self._entries.pop((chat, user))
            self._entries.setdefault((new_chat, user), entry)

    def _remember(self, key: tuple[int, int], now: float, admin: bool) -> None:
        if len(self._entries) >= MAX_ENTRIES:
            self._entries = {k: v for k, v in self._entries.items() if now - v[0] < self._ttl}
        self._entries[key] = (now, admin)


class GroupAdmins:
    """Whether a message's author administers its group (never so in a private chat).

    An anonymous admin posting as the group is one (only admins can); someone posting
    as a channel is not: Telegram names no member behind it to ask about. An operator
    (HEARTH_ADMIN_IDS, `telegram:ID`) is, without asking Telegram."""

    def __init__(self, operators: frozenset[str], cache: AdminCache) -> None:
        self._operators = operators
        self._cache = cache

    async def author_of(self, bot: Bot, message: Message) -> bool:
        if is_private(message):
            return False
        sender = sender_of(message)
        if sender is Sender.GROUP:
            return True
        user = message.from_user
        if user is None or sender is not Sender.PERSON:
            return False
        if f"{PLATFORM}:{user.id}" in self._operators:
            return True  # the command table would say yes anyway: spare the API call
        return await self._cache.is_admin(bot, message.chat.id, user.id)
