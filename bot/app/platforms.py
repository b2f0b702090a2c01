"""Which platform adapters run, built from the settings: the only place that imports them.

Adapters are imported when chosen, so `hearth models` never loads discord.py or
python-telegram-bot.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, TextIO

from bot.app.settings import Settings
from bot.errors import DeliveryError

if TYPE_CHECKING:
    from adapters.base import Platform
    from adapters.discord import DiscordConfig
    from adapters.telegram import TelegramConfig
    from adapters.terminal import TerminalAdapter
    from bot.app.builder import App

log = logging.getLogger(__name__)


def discord_config(settings: Settings) -> DiscordConfig:
    from adapters.discord import DiscordConfig

    assert settings.discord_token is not None
    return DiscordConfig(
        settings.discord_token, settings.discord_api_base, settings.discord_gateway_url,
        settings.platform_down_s, shard_count=settings.discord_shard_count,
        shard_ids=settings.discord_shard_ids or None, catch_up_s=settings.recover_window_s,
    )


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

        # Discord cannot deliver a message again: while the store fails, it waits in the journal.
        # After a gateway gap it reads back what it missed, from where the store says people talked.
        platforms.append(DiscordAdapter(
            discord_config(settings), app.journalled, app.commands, app.modes, activity=app.store,
        ))
    if settings.telegram_token is not None:
        from adapters.telegram import TelegramAdapter

        platforms.append(TelegramAdapter(
            telegram_config(settings), app.pipeline, app.commands, app.modes, moves=app.moves,
        ))
    if platforms:
        return platforms
    from adapters.terminal import TerminalAdapter

    terminal = TerminalAdapter(app.journalled, app.commands, stdin, stdout)
    if stdin.isatty():
        _share_the_terminal(terminal)
    return [terminal]


def _share_the_terminal(terminal: TerminalAdapter) -> None:
    """Log records bound for the terminal the chat runs in (stderr) are printed on lines of
    their own, not into a streaming reply or after the prompt (`adapters.terminal.LogLines`)."""
    from adapters.terminal import LogLines

    if not sys.stderr.isatty():
        return
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler and handler.stream is sys.stderr:
            handler.setStream(LogLines(sys.stderr, terminal))


async def check_tokens(settings: Settings) -> None:
    """Ask each configured platform whether it accepts its token, before the model loads
    (seconds, not minutes). Raises PlatformAuthError for a rejected token; a platform
    that cannot be reached now is left to the adapter (it retries, within
    HEARTH_PLATFORM_DOWN_S)."""
    checks = []
    if settings.discord_token is not None:
        from adapters.discord import check_token as check_discord

        checks.append(("Discord", check_discord(discord_config(settings))))
    if settings.telegram_token is not None:
        from adapters.telegram import check_token as check_telegram

        checks.append(("Telegram", check_telegram(telegram_config(settings))))
    for platform, check in checks:
        try:
            log.info("%s accepts the token of %s", platform, await check)
        except DeliveryError as exc:
            log.warning("could not check the %s token now (%s); connecting anyway", platform, exc.reason)
