"""Hearth's command table, rendered for Telegram: the setMyCommands menu, parsing, the welcome.

Telegram command names allow only a-z, 0-9 and `_`, so `/hearth-channel` is
shown, registered and typed as `/hearth_channel`, and parsed back. Table names
never contain `_` (`bot.commands.spec.NAME`), so the renaming is reversible.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from telegram import BotCommand, Message, MessageEntity

from bot.commands import Command, Commands, Text

START = "start"  # what Telegram sends when a user opens the bot: the welcome, like /help
WELCOME_COMMANDS = frozenset({START, "help"})
START_HELP = Text("what I am and how to talk to me", "介绍与使用方法")
LANGUAGES = ("en", "zh")
CHINESE = "zh"

COMMAND = re.compile(r"^/(?P<name>\w+)(?:@\w+)?(?:\s+(?P<args>.*))?$", re.DOTALL)

INTRO = Text(
    "Hi, I'm {bot_name}, a chat bot answered by a language model that runs on my owner's machine.\n"
    "In a private chat I answer every message. In a group, mention @{username} or reply to one of my\n"
    "messages; each forum topic is its own conversation.",
    "你好，我是 {bot_name}，由运行在主人机器上的语言模型来回答。\n"
    "私聊时我会回复每一条消息；在群组里请 @{username} 或回复我的消息，每个论坛话题都是独立的对话。",
)


def telegram_name(name: str) -> str:
    """A table name as Telegram allows it: `hearth-channel` → `hearth_channel`."""
    return name.replace("-", "_")


def table_name(name: str) -> str:
    """A Telegram command name back as the table spells it: `hearth_channel` → `hearth-channel`."""
    return name.lower().replace("_", "-")


def handled_names(commands: Iterable[Command]) -> list[str]:
    """Every command the bot answers on Telegram: the table's, and /start."""
    return [START, *(telegram_name(c.name) for c in commands)]


def menu(commands: Iterable[Command], language: str = "en") -> list[BotCommand]:
    """The command menu, in English or Chinese: /start, then every command of the table."""
    entries = [BotCommand(START, START_HELP.get(language))]
    return entries + [BotCommand(telegram_name(c.name), c.help.get(language)) for c in commands]


def parse_command(text: str) -> tuple[str, str]:
    """`/name@bot args…` → (the table's name, args), args keeping their line breaks."""
    match = COMMAND.match(text.strip())
    if match is None:
        return "", ""
    return table_name(match["name"]), (match["args"] or "").strip()


def command_in(message: Message, username: str, names: frozenset[str]) -> tuple[str, str] | None:
    """(the table's name, args) when `message` is one of our commands, else None.

    A command is what Telegram marks as one at the start of the text; `/name@other_bot`
    is for another bot in the group and not ours."""
    text = message.text or ""
    head = next((e for e in message.entities if e.type == MessageEntity.BOT_COMMAND and e.offset == 0), None)
    if head is None:
        return None
    word = text[1 : head.length]
    name, _, addressee = word.partition("@")
    if addressee and addressee.lower() != username.lower():
        return None
    if name.lower() not in names:
        return None
    return parse_command(text)


def for_telegram(text: str, commands: Iterable[Command]) -> str:
    """`text` with every `/hearth-channel` written as Telegram users type it."""
    for command in commands:
        if "-" in command.name:
            pattern = rf"(?<![\w/-])/{re.escape(command.name)}(?![\w-])"
            text = re.sub(pattern, "/" + telegram_name(command.name), text)
    return text


def welcome(commands: Commands, bot_name: str, username: str, first: str = "en") -> str:
    """/start and /help: what the bot is, then every command, in both languages, the
    user's own (`first`) first."""
    order = sorted(LANGUAGES, key=lambda lang: lang != first)
    parts = [
        INTRO.get(lang).format(bot_name=bot_name, username=username) + "\n" + commands.help(lang)
        for lang in order
    ]
    return for_telegram("\n\n".join(parts), commands)
