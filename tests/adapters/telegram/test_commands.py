"""The command table rendered for Telegram: names, parsing, the menu, the welcome."""

from __future__ import annotations

import pytest

from adapters.telegram.commands import for_telegram, handled_names, menu, parse_command, welcome
from bot.boundary import ErrorBoundary
from bot.commands import Access, Admins, Command, Commands, Invocation, Option, Text, always
from bot.i18n import Locale


async def _echo(call: Invocation) -> str:
    return call.args


def table() -> Commands:
    mode = Option("mode", Text("on or off", "开或关"), required=True)
    return Commands(
        [Command("status", Text("how it goes", "状态"), _echo),
         Command("hearth-channel", Text("answer everything", "回复所有"), _echo,
                 access=always(Access.ADMIN), options=(mode,))],
        Admins(), ErrorBoundary(Locale()), Locale(),
    )


@pytest.mark.parametrize(("text", "parsed"), [
    ("/status", ("status", "")),
    ("/hearth_channel on", ("hearth-channel", "on")),
    ("/Hearth_Channel@HearthTestBot  off ", ("hearth-channel", "off")),
    ("/persona set line one\nline two", ("persona", "set line one\nline two")),
    ("no command", ("", "")),
])
def test_a_command_is_parsed_back_to_the_tables_name(text: str, parsed: tuple[str, str]) -> None:
    assert parse_command(text) == parsed


def test_the_handled_names_are_the_tables_as_telegram_allows_them_and_start() -> None:
    assert handled_names(table()) == ["start", "status", "hearth_channel", "help"]


@pytest.mark.parametrize(("language", "status_help"), [("en", "how it goes"), ("zh", "状态")])
def test_the_menu_describes_every_command_in_its_language(language: str, status_help: str) -> None:
    entries = {c.command: c.description for c in menu(table(), language)}

    assert list(entries) == ["start", "status", "hearth_channel", "help"]
    assert entries["status"] == status_help


def test_hyphenated_names_are_written_as_telegram_users_type_them() -> None:
    text = "Usage: /hearth-channel on|off (/hearth-channel); not /hearth-channels or a/hearth-channel"

    assert for_telegram(text, table()) == (
        "Usage: /hearth_channel on|off (/hearth_channel); not /hearth-channels or a/hearth-channel"
    )


def test_the_welcome_introduces_the_bot_and_lists_every_command_in_both_languages() -> None:
    text = welcome(table(), "Hearth", "HearthTestBot")

    assert "Hi, I'm Hearth" in text and "你好，我是 Hearth" in text and "@HearthTestBot" in text
    assert "/hearth_channel MODE — answer everything" in text
    assert "/hearth_channel MODE — 回复所有" in text
    assert "/hearth-channel" not in text
