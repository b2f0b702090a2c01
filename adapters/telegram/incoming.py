"""Telegram messages → `IncomingMessage`: which conversation, who wrote, is Hearth addressed.

A private chat, a group and each forum topic are separate conversations. In a
private chat every message is for Hearth; in a group only a message that mentions
the bot by @username (the mention is removed), or that replies to one of its
messages, unless an admin has set the group to answer everything
(`/hearth_channel on`, which the adapter looks up). A command addressed to another
bot (`/start@QuotLyBot`) is never for Hearth, in any chat or mode.

What is read: the text, or a media message's caption, with its entities (a mention
in a caption addresses Hearth like one in text); the kinds of media the model
cannot see (`MEDIA`); the message it replies to (its author and text or caption;
the part the user quoted, when they chose one), unless that is Hearth's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from telegram import Chat, Message, MessageEntity
from telegram.constants import ChatType

from bot.messages import ConversationKey, IncomingMessage, Quote

PLATFORM = "telegram"
# Message fields holding something the model cannot see, and what the model is told it is.
MEDIA = (
    ("photo", "photo"), ("video", "video"), ("animation", "animation"), ("video_note", "video message"),
    ("voice", "voice message"), ("audio", "audio file"), ("document", "file"), ("sticker", "sticker"),
    ("location", "location"), ("venue", "venue"), ("contact", "contact"), ("poll", "poll"),
    ("dice", "dice"), ("story", "story"),
)


class Sender(Enum):
    """Who wrote a message. When a chat speaks, `from` holds only Telegram's placeholder
    (GroupAnonymousBot, Channel_Bot, or the "Telegram" service account): `sender_chat`
    says who it is."""

    PERSON = "person"
    GROUP = "group"  # an anonymous admin, posting as the group itself
    CHANNEL = "channel"  # someone posting as a channel (their own, or the group's linked one)
    AUTOMATIC_FORWARD = "automatic forward"  # a post of the linked channel, copied in by Telegram
    BOT = "bot"


# Answered as people are; a bot and a channel's automatically forwarded posts never are.
ANSWERED_SENDERS = frozenset({Sender.PERSON, Sender.GROUP, Sender.CHANNEL})


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the bot is on Telegram, learnt from getMe at start-up."""

    id: int
    username: str


def well_formed(message: Message) -> bool:
    """Whether `message` has the shape the rest of this module reads: an id, a chat with
    an id, and text that is text (or none). PTB takes what Telegram sends as it comes,
    so a field missing or of another type would only fail later, deep in handling."""
    chat = message.chat
    return (
        isinstance(message.message_id, int) and isinstance(chat, Chat) and isinstance(chat.id, int)
        and (message.text is None or isinstance(message.text, str))
        and (message.caption is None or isinstance(message.caption, str))
    )


def body(message: Message) -> str:
    """What the author wrote: the text, or a media message's caption ("" when neither)."""
    return message.text or message.caption or ""


def body_entities(message: Message, types: list[str | None]) -> dict[MessageEntity, str]:
    """The entities of `body` (the caption's for a media message), with their text."""
    if message.text is None and message.caption is not None:
        return message.parse_caption_entities(types)
    return message.parse_entities(types)


def media_of(message: Message) -> tuple[str, ...]:
    """The kinds of media `message` carries that the model cannot see, in `MEDIA` order."""
    return tuple(kind for field, kind in MEDIA if getattr(message, field, None))


def for_another_bot(message: Message, me: BotIdentity) -> bool:
    """Whether `message` opens with a command addressed to another bot (`/ban@ModBot 12345`):
    never answered or stored, in any chat and any mode. Telegram marks the command as an
    entity at offset 0, in text or caption."""
    for entity, value in body_entities(message, [MessageEntity.BOT_COMMAND]).items():
        if entity.offset == 0:
            _, _, addressee = value.partition("@")
            return bool(addressee) and addressee.lower() != me.username.lower()
    return False


def conversation_key(message: Message) -> ConversationKey:
    """Chat id, plus the topic id inside a forum (`message_thread_id`)."""
    thread = message.message_thread_id if message.is_topic_message else None
    return ConversationKey(PLATFORM, str(message.chat.id), str(thread) if thread else "")


def is_private(message: Message) -> bool:
    return message.chat.type == ChatType.PRIVATE


def addressed_text(message: Message, me: BotIdentity) -> str | None:
    """The text (or caption) meant for Hearth (its @mention removed), or None when it is
    not addressed."""
    text = body(message)
    if is_private(message) or replies_to_bot(message, me):
        return text
    if mentions_bot(message, me):
        return strip_mention(text, me.username)
    return None


def mentions_bot(message: Message, me: BotIdentity) -> bool:
    entities = body_entities(message, [MessageEntity.MENTION, MessageEntity.TEXT_MENTION])
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


def quote_of(message: Message, me: BotIdentity) -> Quote | None:
    """The message `message` replies to, for the model: its author and text (or caption;
    the part the user selected, when they quoted one). None for no reply, a forum topic's
    opening (every topic message "replies" to it) and Hearth's own messages (already in
    the history)."""
    original = message.reply_to_message
    if original is None or original.forum_topic_created is not None or replies_to_bot(message, me):
        return None
    selected = message.quote.text if message.quote is not None else ""
    text = selected or body(original)
    kinds = media_of(original)
    if kinds and not selected:
        text = f"[{', '.join(kinds)}] {text}".strip()
    return Quote(_author(original)[1], text)


def strip_mention(text: str, username: str) -> str:
    pattern = re.compile(rf"(^|\s)@{re.escape(username)}\b[,:]?\s*", re.IGNORECASE)
    return pattern.sub(r"\1", text).strip()


def sender_of(message: Message) -> Sender:
    """Who wrote `message`, judged by `sender_chat` before `from` (whose placeholder is a bot)."""
    if message.is_automatic_forward:
        return Sender.AUTOMATIC_FORWARD
    if message.sender_chat is not None:
        return Sender.GROUP if message.sender_chat.id == message.chat.id else Sender.CHANNEL
    user = message.from_user
    return Sender.BOT if user is not None and user.is_bot else Sender.PERSON


def is_answered_sender(message: Message) -> bool:
    """Whether Hearth may answer (and store) what this sender writes, were it addressed."""
    return sender_of(message) in ANSWERED_SENDERS


def to_incoming(
    message: Message, text: str, *, admin: bool = False, addressed: bool = True,
    me: BotIdentity | None = None,
) -> IncomingMessage:
    """The message as the core sees it; `addressed` is False for a group message answered
    only because the channel answers every message (`/hearth_channel on`). With `me`, what
    it quotes and the media it carries come along (a command needs neither)."""
    author_id, author_name = _author(message)
    user = message.from_user
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
        quote=quote_of(message, me) if me is not None else None,
        media=media_of(message) if me is not None else (),
        language=(user.language_code or "") if user is not None else "",
    )


def _author(message: Message) -> tuple[str, str]:
    """A chat speaking for itself (anonymous admin, a channel), else the user: Channel_Bot
    or GroupAnonymousBot in `from` is nobody."""
    if message.sender_chat is not None:
        return str(message.sender_chat.id), message.sender_chat.title or ""
    if message.from_user is not None:
        return str(message.from_user.id), message.from_user.full_name
    return str(message.chat.id), message.chat.title or ""
