"""Hearth's commands on Telegram: the menu registered with setMyCommands, parsing, help."""

from __future__ import annotations

import re

from telegram import BotCommand

# name → (English, Chinese) menu descriptions
COMMANDS: dict[str, tuple[str, str]] = {
    "start": ("what I am and how to talk to me", "介绍与使用方法"),
    "help": ("what I am and how to talk to me", "介绍与使用方法"),
    "model": ("list models; /model NAME switches (admins)", "查看模型；/model 名称 切换（管理员）"),
    "persona": ("show the persona; set or reset it (admins)", "查看人设；设置或重置（管理员）"),
    "reset": ("forget this conversation", "清除本会话的记忆"),
    "status": ("model, queue, uptime, usage", "模型、队列、运行时间、用量"),
}
HELP_COMMANDS = frozenset({"start", "help"})
CORE_COMMANDS = frozenset(COMMANDS) - HELP_COMMANDS
CHINESE = "zh"

COMMAND = re.compile(r"^/(?P<name>\w+)(?:@\w+)?(?:\s+(?P<args>.*))?$", re.DOTALL)

HELP = """\
Hi, I'm {bot_name}, a chat bot answered by a language model that runs on my owner's machine.
In a private chat I answer every message. In a group, mention @{username} or reply to one of my
messages; each forum topic is its own conversation.
/model — list models; /model NAME — switch (admins)
/persona — show the persona; /persona set TEXT, /persona reset (admins)
/reset — forget this conversation (admins, in groups)
/status — model, queue, uptime, usage

你好，我是 {bot_name}，由运行在主人机器上的语言模型来回答。
私聊时我会回复每一条消息；在群组里请 @{username} 或回复我的消息，每个论坛话题都是独立的对话。
/model — 查看模型；/model 名称 — 切换（管理员）
/persona — 查看人设；/persona set 文本、/persona reset（管理员）
/reset — 清除本会话的记忆（群组中仅管理员）
/status — 模型、队列、运行时间、用量"""


def parse_command(text: str) -> tuple[str, str]:
    """`/name@bot args…` → (name, args), args keeping their line breaks."""
    match = COMMAND.match(text.strip())
    if match is None:
        return "", ""
    return match["name"].lower(), (match["args"] or "").strip()


def help_text(bot_name: str, username: str) -> str:
    return HELP.format(bot_name=bot_name, username=username)


def menu(language: str = "en") -> list[BotCommand]:
    """The command menu, in English or Chinese."""
    column = 1 if language == CHINESE else 0
    return [BotCommand(name, texts[column]) for name, texts in COMMANDS.items()]
