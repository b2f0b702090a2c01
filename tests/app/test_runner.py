"""`hearth run` starts the adapters whose tokens are set, else the terminal chat."""

from __future__ import annotations

import io
from pathlib import Path

from adapters.discord import DiscordAdapter
from adapters.telegram import TelegramAdapter
from adapters.terminal import TerminalAdapter
from bot.core import Hearth
from bot.runner import build_adapters
from tests.conftest import make_settings


def adapters_for(core: Hearth, tmp_path: Path, **tokens: str) -> list[type]:
    core.settings = make_settings(tmp_path, **tokens)
    return [type(a) for a in build_adapters(core, io.StringIO(), io.StringIO())]


def test_no_token_means_the_terminal_chat(core: Hearth, tmp_path: Path) -> None:
    assert adapters_for(core, tmp_path) == [TerminalAdapter]


def test_each_platform_token_starts_its_adapter(core: Hearth, tmp_path: Path) -> None:
    assert adapters_for(core, tmp_path, discord_token="d") == [DiscordAdapter]
    assert adapters_for(core, tmp_path, telegram_token="1:t") == [TelegramAdapter]
    both = adapters_for(core, tmp_path, discord_token="d", telegram_token="1:t")
    assert both == [DiscordAdapter, TelegramAdapter]
