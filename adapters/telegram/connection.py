"""The Bot API client Hearth uses: python-telegram-bot's `ExtBot`, paced and retried.

No `Application`: updates arrive through `Poller` or `WebhookReceiver`, which
hand each one over before Telegram is told it arrived; the adapter dispatches.
"""

from __future__ import annotations

from typing import Any

from telegram.error import InvalidToken, TelegramError
from telegram.ext import ExtBot
from telegram.request import HTTPXRequest

from adapters.telegram.config import TelegramConfig
from adapters.telegram.outgoing import TelegramApiError, file_url
from adapters.telegram.pacing import PacedRequests, Pacing
from adapters.telegram.redact import guarded_logs
from bot.errors import DeliveryError, PlatformAuthError
from bot.logs import redact

PLATFORM = "telegram"

Bot = ExtBot[Any]


def build_bot(config: TelegramConfig, pacing: Pacing, request: HTTPXRequest, updates: HTTPXRequest) -> Bot:
    """A bot on `config`'s Bot API; message calls paced and retried by `pacing`."""
    return ExtBot(
        config.token.get_secret_value(), base_url=config.base_url, base_file_url=file_url(config.base_url),
        request=request, get_updates_request=updates, rate_limiter=PacedRequests(pacing),
    )


async def start(bot: Bot, config: TelegramConfig) -> None:
    """`getMe`; a rejected token is PlatformAuthError, another failure TelegramApiError."""
    try:
        await bot.initialize()
    except InvalidToken as exc:
        raise PlatformAuthError(PLATFORM, redact(str(exc), [config.token])) from None
    except TelegramError as exc:  # PTB quotes the token in some of these
        raise TelegramApiError("start-up", redact(str(exc), [config.token])) from None


async def check_token(config: TelegramConfig) -> str:
    """Ask Telegram who the token belongs to (before the model loads); the bot's @username.

    Raises PlatformAuthError when Telegram rejects the token, DeliveryError when it
    cannot be asked now."""
    request = HTTPXRequest(connection_pool_size=1)
    bot = build_bot(config, Pacing(max_retries=1), request, request)
    with guarded_logs([config.token]):
        try:
            await start(bot, config)
            return str(bot.username)
        except TelegramApiError as exc:
            raise DeliveryError(PLATFORM, 0, exc.reason) from None
        finally:
            await request.shutdown()
