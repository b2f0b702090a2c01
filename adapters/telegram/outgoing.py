"""The sending side: where a conversation key points, what each sent message shows, typing,
and Telegram's errors as the core's `DeliveryError`."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from telegram import Bot, ReplyParameters
from telegram.constants import ChatAction
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)

from adapters.telegram.incoming import PLATFORM
from bot.errors import DeliveryError, HearthError
from bot.messages import ConversationKey

log = logging.getLogger(__name__)

REMEMBERED_TEXTS = 4096
# PTB's exception for each HTTP status it maps (BadRequest is a NetworkError: it comes first).
# A plain NetworkError is a dropped connection or a 5xx that PTB does not tell apart: 0.
STATUSES: tuple[tuple[type[TelegramError], int], ...] = (
    (RetryAfter, 429), (ChatMigrated, 400), (BadRequest, 400), (InvalidToken, 401),
    (Forbidden, 403), (Conflict, 409), (NetworkError, 0),
)


class TelegramApiError(HearthError):
    """Telegram would not let the bot start (getMe, setWebhook); `reason` is Telegram's word."""

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

    def forget(self, chat: str, message_id: str) -> None:
        self._texts.pop((chat, message_id), None)


def delivery_error(exc: TelegramError, reason: str) -> DeliveryError:
    """A failed send, edit or delete (after the retries) as the core's error; `reason` is scrubbed."""
    status = next((code for kind, code in STATUSES if isinstance(exc, kind)), 0)
    return DeliveryError(PLATFORM, status, reason)


def target(key: ConversationKey) -> tuple[int, int | None]:
    """The chat id and forum topic (message_thread_id) a conversation key names."""
    return int(key.channel), int(key.thread) if key.thread else None


def quote_of(key: ConversationKey, chat_id: int, reply_to: str | None) -> ReplyParameters | None:
    """Quote the message answered in a group (`chat_id`, where the reply goes); not once the
    group moved to a new id: message ids there are the new chat's."""
    if reply_to is None or not reply_to.isdigit() or chat_id >= 0 or str(chat_id) != key.channel:
        return None
    return ReplyParameters(int(reply_to), allow_sending_without_reply=True)


def file_url(base_url: str) -> str:
    """The file-download URL beside an API URL: `…/bot` → `…/file/bot`."""
    head, sep, tail = base_url.rpartition("/bot")
    return f"{head}/file/bot{tail}" if sep else base_url


async def keep_typing(
    bot: Bot,
    where: Callable[[], tuple[int, int | None]],
    every: float,
    moved: Callable[[int, int], Awaitable[object]],
) -> None:
    """Show "typing…" in `where()` (chat id, forum topic: asked each time, the chat may move)
    until cancelled; Telegram clears it after about 5 s, so repeat (`every` seconds).

    A group upgraded to a supergroup and not heard of yet answers ChatMigrated: `moved(old,
    new)` follows it, and typing goes on there at once, as a reply sent there would."""
    while True:
        chat_id, thread = where()
        try:
            await bot.send_chat_action(chat_id, ChatAction.TYPING, message_thread_id=thread)
        except ChatMigrated as exc:
            try:
                await moved(chat_id, exc.new_chat_id)
            except HearthError as err:  # the store's move is retried by the reply's own send
                log.warning("moving chat %s to %s failed: %s", chat_id, exc.new_chat_id, err)
            if where()[0] != chat_id:
                continue  # followed: typing there now, not a tick later
        except TelegramError as exc:  # cosmetic: never fail a reply over it
            log.debug("typing indicator in %s failed: %s", chat_id, exc)
        await asyncio.sleep(every)
