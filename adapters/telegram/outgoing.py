"""The sending side: where a conversation key points, what each sent message shows, typing."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from telegram import Bot
from telegram.constants import ChatAction
from telegram.error import TelegramError

from bot.errors import HearthError
from bot.messages import ConversationKey

log = logging.getLogger(__name__)

REMEMBERED_TEXTS = 4096


class TelegramApiError(HearthError):
    """A Bot API call failed for good, after the retries; `reason` is Telegram's word."""

    def __init__(self, method: str, reason: str) -> None:
        super().__init__(f"Telegram {method} failed: {reason}")
        self.method = method
        self.reason = reason


class ShownTexts:
    """What each message Hearth sent shows now, so an edit that changes nothing is never sent."""

    def __init__(self, size: int = REMEMBERED_TEXTS) -> None:
        self._size = size
        self._texts: OrderedDict[tuple[str, str], str] = OrderedDict()

    def get(self, chat: str, message_id: str) -> str | None:
        return self._texts.get((chat, message_id))

    def put(self, chat: str, message_id: str, text: str) -> None:
        self._texts[(chat, message_id)] = text
        self._texts.move_to_end((chat, message_id))
        while len(self._texts) > self._size:
            self._texts.popitem(last=False)


def target(key: ConversationKey) -> tuple[int, int | None]:
    """The chat id and forum topic (message_thread_id) a conversation key names."""
    return int(key.channel), int(key.thread) if key.thread else None


def file_url(base_url: str) -> str:
    """The file-download URL beside an API URL: `…/bot` → `…/file/bot`."""
    head, sep, tail = base_url.rpartition("/bot")
    return f"{head}/file/bot{tail}" if sep else base_url


@asynccontextmanager
async def typing(bot: Bot, key: ConversationKey, every: float) -> AsyncIterator[None]:
    """Show "typing…" until the block ends; Telegram clears it after about 5 s, so repeat.

    Entering does not suspend: a handler that enters it still reaches the core in
    arrival order."""
    task = asyncio.create_task(_keep_typing(bot, key, every), name=f"telegram-typing-{key}")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait([task])
        if not task.cancelled() and task.exception() is not None:
            log.warning("typing indicator in %s stopped: %r", key, task.exception())


async def _keep_typing(bot: Bot, key: ConversationKey, every: float) -> None:
    chat_id, thread = target(key)
    while True:
        try:
            await bot.send_chat_action(chat_id, ChatAction.TYPING, message_thread_id=thread)
        except TelegramError as exc:  # cosmetic: never fail a reply over it
            log.debug("typing indicator in %s failed: %s", key, exc)
        await asyncio.sleep(every)
