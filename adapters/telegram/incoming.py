"""Telegram messages → `IncomingMessage`: which conversation, who wrote, is Hearth addressed.

A private chat, a group and each forum topic are separate conversations. In a
private chat every message is for Hearth; in a group only a message that mentions
the bot by @username (the mention is removed), or that replies to one of its
messages, unless an admin has set the group to answer everything
(`/hearth_channel on`, which the adapter looks up).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from telegram import Message, MessageEntity
from telegram.constants import ChatType

from bot.messages import ConversationKey, IncomingMessage

PLATFORM = "telegram"
# Telegram's stand-in sender when a group admin posts anonymously, as the group itself.
ANONYMOUS_ADMIN_ID = 1087968824


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the bot is on Telegram, learnt from getMe at start-up."""

    id: int
    username: str


def conversation_key(message: Message) -> ConversationKey:
    """Chat id, plus the topic id inside a forum (`message_thread_id`)."""
    thread = message.message_thread_id if message.is_topic_message else None
    return ConversationKey(PLATFORM, str(message.chat.id), str(thread) if thread else "")


def is_private(message: Message) -> bool:
    return message.chat.type == ChatType.PRIVATE


def addressed_text(message: Message, me: BotIdentity) -> str | None:
    """The text meant for Hearth (its @mention removed), or None when it is not addressed."""
    text = message.text or ""
    if is_private(message) or replies_to_bot(message, me):
        return text
    if mentions_bot(message, me):
        return strip_mention(text, me.username)
    return None


def mentions_bot(message: Message, me: BotIdentity) -> bool:
    entities = message.parse_entities([MessageEntity.MENTION, MessageEntity.TEXT_MENTION])
    for entity, value in entities.items():
        if entity.type == MessageEntity.MENTION and value.lower() == f"@{me.username.lower()}":
            return True
        if entity.type == MessageEntity.TEXT_MENTION and entity.user and entity.user.id == me.id:
            return True
    return False


def replies_to_bot(message: Message, me: BotIdentity) -> bool:
    original = message.reply_to_message
    if original is None or original.from_user is None:
        return False
    # Inside a forum topic every message "replies" to the topic's opening service
    # message, which the bot sent if it created the topic: not a reply to Hearth.
    return original.forum_topic_created is None and original.from_user.id == me.id


def strip_mention(text: str, username: str) -> str:
    pattern = re.compile(rf"(^|\s)@{re.escape(username)}\b[,:]?\s*", re.IGNORECASE)
    return pattern.sub(r"\1", text).strip()


def is_anonymous_admin(message: Message) -> bool:
    """An admin posting as the group: Telegram sends it from GroupAnonymousBot."""
    sender, user = message.sender_chat, message.from_user
    from_group = sender is not None and sender.id == message.chat.id
    return from_group and user is not None and user.id == ANONYMOUS_ADMIN_ID


def is_from_other_bot(message: Message) -> bool:
    user = message.from_user
    return user is not None and user.is_bot and not is_anonymous_admin(message)


def to_incoming(
    message: Message, text: str, *, admin: bool = False, addressed: bool = True
) -> IncomingMessage:
    """The message as the core sees it; `addressed` is False for a group message answered
    only because the channel answers every message (`/hearth_channel on`)."""
    author_id, author_name = _author(message)
    return IncomingMessage(
        key=conversation_key(message),
        author_id=author_id,
        author_name=author_name,
        text=text,
        message_id=str(message.message_id),
        addresses_bot=addressed,
        author_is_admin=admin,
        is_direct=is_private(message),
        # Stable for the whole chat, so the persona prompt (and vLLM's prefix cache) stays put.
        channel_name="" if is_private(message) else message.chat.title or "",
    )


def _author(message: Message) -> tuple[str, str]:
    """A chat speaking for itself (anonymous admin, a channel) or the user."""
    if message.sender_chat is not None:
        return str(message.sender_chat.id), message.sender_chat.title or ""
    if message.from_user is not None:
        return str(message.from_user.id), message.from_user.full_name
    return str(message.chat.id), message.chat.title or ""
