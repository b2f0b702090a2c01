"""Normalising at the edge: Discord messages and interactions become `IncomingMessage` values.

Nothing here talks to Discord or the store; the adapter decides, with these
helpers, whether a message addresses the bot.

What is read: the content (a message with attachments carries its words there, as a
caption), the kinds of what is attached (`media_of`: the model sees none of it), the
message it replies to (author and content, unless it is Hearth's own), and a slash
command's locale (the author's app language). A message opening with a command for
another bot (`/ban@ModBot 12345`, as people type them for Telegram-style bridges and
prefix bots) is never for Hearth.
"""

from __future__ import annotations

import re

import discord
from discord.abc import Snowflake

from bot.messages import ConversationKey, IncomingMessage, Quote

PLATFORM = "discord"
# `/name@SomeBot …` at the start of a message: a command typed for another bot.
OTHER_BOT_COMMAND = re.compile(r"^\s*/\w+@(\w+)")
# An attachment's content type → what the model is told it cannot see.
MEDIA_KINDS = (("image/", "image"), ("video/", "video"), ("audio/", "audio file"))
DM_CHANNEL_NAME = "a direct message"
# Messages people write; anything else (joins, pins, boosts…) is never answered.
CHAT_MESSAGE_TYPES = frozenset({discord.MessageType.default, discord.MessageType.reply})


def conversation_key(channel: Snowflake) -> ConversationKey:
    """A thread is its own conversation inside its parent channel; anything else is one."""
    if isinstance(channel, discord.Thread):
        return ConversationKey(PLATFORM, str(channel.parent_id), str(channel.id))
    return ConversationKey(PLATFORM, str(channel.id))


def channel_id(key: ConversationKey) -> int:
    """The Discord channel that carries a conversation: the thread when there is one."""
    return int(key.thread or key.channel)


def channel_name(channel: object) -> str:
    """What the persona template's `{channel_name}` shows."""
    if isinstance(channel, discord.DMChannel):
        return DM_CHANNEL_NAME
    name = getattr(channel, "name", None)
    return f"#{name}" if isinstance(name, str) and name else ""


def bot_role_id(message: discord.Message) -> int | None:
    """The role Discord made for the bot in this server: people's clients often mention it
    instead of the bot itself, since both are called the bot's name."""
    role = message.guild.self_role if message.guild is not None else None
    return role.id if role is not None else None


def strip_mention(text: str, bot_id: int, role_id: int | None = None) -> str:
    """The text without the bot's mentions (`<@id>`, the legacy `<@!id>`, its role's `<@&id>`)."""
    mention = rf"<@!?{bot_id}>" + (rf"|<@&{role_id}>" if role_id is not None else "")
    return re.sub(rf"\s*(?:{mention})\s*", " ", text).strip()


def mentions_bot(message: discord.Message, bot_id: int) -> bool:
    role_id = bot_role_id(message)
    return bot_id in message.raw_mentions or (role_id is not None and role_id in message.raw_role_mentions)


def replies_to_bot(message: discord.Message, bot_id: int) -> bool:
    reference = message.reference
    resolved = reference.resolved if reference is not None else None
    return isinstance(resolved, discord.Message) and resolved.author.id == bot_id


def manages_server(user: discord.abc.User | discord.Member) -> bool:
    """Manage Server, as computed from the member's roles (owner and Administrator included)."""
    return isinstance(user, discord.Member) and user.guild_permissions.manage_guild


def is_chat(message: discord.Message) -> bool:
    """A message from a person (never a bot, this one included) that could be answered."""
    return not message.author.bot and message.type in CHAT_MESSAGE_TYPES


def for_another_bot(message: discord.Message, bot_name: str) -> bool:
    """Whether the message opens with `/command@name` for a bot other than `bot_name`."""
    match = OTHER_BOT_COMMAND.match(message.content)
    return match is not None and match.group(1).lower() != bot_name.lower()


def media_of(message: discord.Message) -> tuple[str, ...]:
    """What is attached (files, then stickers), each named by its kind; the model sees none."""
    kinds = [_kind(a.content_type or "") for a in message.attachments]
    kinds += ["sticker" for _ in message.stickers]
    return tuple(kinds)


def _kind(content_type: str) -> str:
    return next((kind for prefix, kind in MEDIA_KINDS if content_type.startswith(prefix)), "file")


def quote_of(message: discord.Message, bot_id: int) -> Quote | None:
    """The message this one replies to (author and content, what it had attached named),
    None when it is no reply, is Hearth's own (in the history already) or Discord did not
    include it (deleted, or too old for the gateway to resolve)."""
    reference = message.reference
    original = reference.resolved if reference is not None else None
    if not isinstance(original, discord.Message) or original.author.id == bot_id:
        return None
    kinds = media_of(original)
    text = original.content if not kinds else f"[{', '.join(kinds)}] {original.content}".strip()
    return Quote(original.author.display_name, strip_mention(text, bot_id))


def from_message(message: discord.Message, bot_id: int, *, addresses_bot: bool) -> IncomingMessage:
    direct = message.guild is None
    return IncomingMessage(
        key=conversation_key(message.channel),
        author_id=str(message.author.id),
        author_name=message.author.display_name,
        text=strip_mention(message.content, bot_id, bot_role_id(message)),
        message_id=str(message.id),
        addresses_bot=direct or addresses_bot,
        author_is_admin=manages_server(message.author),
        is_direct=direct,
        channel_name=channel_name(message.channel),
        quote=quote_of(message, bot_id),
        media=media_of(message),
        server=str(message.guild.id) if message.guild is not None else "",  # for HEARTH_ACCESS_ALLOW
    )


def from_interaction(interaction: discord.Interaction[discord.Client], text: str) -> IncomingMessage:
    """A slash command as a message; admin comes from the permissions Discord resolved."""
    channel = interaction.channel
    key = (
        conversation_key(channel) if channel is not None
        else ConversationKey(PLATFORM, str(interaction.channel_id))
    )
    direct = interaction.guild_id is None
    return IncomingMessage(
        key=key,
        author_id=str(interaction.user.id),
        author_name=interaction.user.display_name,
        text=text,
        message_id=f"interaction-{interaction.id}",
        author_is_admin=not direct and interaction.permissions.manage_guild,
        is_direct=direct,
        channel_name=channel_name(channel),
        language=str(interaction.locale.value),
        server=str(interaction.guild_id or ""),
    )
