"""python-telegram-bot's Application, built and started as the config says.

The adapter adds its handlers and drives the lifecycle by hand; this holds the
plumbing: the HTTP clients, the rate limiter, long polling or a webhook.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationBuilder
from telegram.request import HTTPXRequest

from adapters.telegram.config import TelegramConfig
from adapters.telegram.outgoing import file_url
from adapters.telegram.pacing import PacedRequests, Pacing

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ("message",)

App = Application[Any, Any, Any, Any, Any, Any]


def build_application(
    config: TelegramConfig, pacing: Pacing, request: HTTPXRequest, updates_request: HTTPXRequest
) -> App:
    """An Application on `config`'s Bot API, paced by `pacing`, handling updates concurrently."""
    app: App = (
        ApplicationBuilder()
        .token(config.token.get_secret_value())
        .base_url(config.base_url)
        .base_file_url(file_url(config.base_url))
        .request(request)
        .get_updates_request(updates_request)
        .concurrent_updates(pacing.concurrent_updates)
        .rate_limiter(PacedRequests(pacing))
        .build()
    )
    return app


async def start_updates(app: App, config: TelegramConfig, pacing: Pacing, secret: SecretStr) -> str:
    """Start long polling, or the webhook when `config.webhook_url` is set; which one it was."""
    updater = app.updater
    assert updater is not None, "built with the default Updater"
    if not config.webhook_url:
        await updater.start_polling(
            timeout=dt.timedelta(seconds=pacing.poll_timeout), allowed_updates=ALLOWED_UPDATES,
            bootstrap_retries=pacing.max_retries, error_callback=_log_polling_error,
        )
        return "long polling"
    await updater.start_webhook(
        listen=config.webhook_listen, port=config.webhook_port,
        url_path=urlsplit(config.webhook_url).path.strip("/"), webhook_url=config.webhook_url,
        allowed_updates=ALLOWED_UPDATES, secret_token=secret.get_secret_value(),
        bootstrap_retries=pacing.max_retries,
    )
    return "webhook"


def _log_polling_error(error: TelegramError) -> None:
    log.warning("polling Telegram failed (will retry): %s", error)
