"""Which platform adapters run, built from the settings: the only place that imports them.

Adapters are imported when chosen, so `hearth models` never loads discord.py or
python-telegram-bot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from bot.app.settings import Settings

if TYPE_CHECKING:
    from adapters.base import Platform
    from adapters.discord import DiscordConfig
    from adapters.telegram import TelegramConfig
    from bot.app.builder import App


def discord_config(settings: Settings) -> DiscordConfig:
    from adapters.discord import DiscordConfig

    assert settings.discord_token is not None
    return DiscordConfig(settings.discord_token, settings.discord_api_base, settings.discord_gateway_url)


def telegram_config(settings: Settings) -> TelegramConfig:
    from adapters.telegram import TelegramConfig

    assert settings.telegram_token is not None
    return TelegramConfig(
        token=settings.telegram_token,
        base_url=settings.telegram_base_url,
        webhook_url=settings.telegram_webhook_url,
        webhook_listen=settings.telegram_webhook_listen,
        webhook_port=settings.telegram_webhook_port,
        webhook_secret=settings.telegram_webhook_secret,
        operators=settings.admin_ids,
        bot_name=settings.bot_name,
        down_s=settings.platform_down_s,
    )


def build_platforms(app: App, stdin: TextIO, stdout: TextIO) -> list[Platform]:
    """Every platform adapter whose token is set; the terminal chat when none is."""
    settings = app.settings
    platforms: list[Platform] = []
    if settings.discord_token is not None:
        from adapters.discord import DiscordAdapter

        platforms.append(DiscordAdapter(discord_config(settings), app.pipeline, app.commands, app.modes))
    if settings.telegram_token is not None:
        from adapters.telegram import TelegramAdapter

        platforms.append(TelegramAdapter(telegram_config(settings), app.pipeline, app.commands, app.modes))
    if platforms:
        return platforms
    from adapters.terminal import TerminalAdapter

    return [TerminalAdapter(app.pipeline, app.commands, stdin, stdout)]
