"""Webhook mode: Telegram posts each update; it counts as delivered when we answer 200.

So the answer is sent only after the update was handed over (and the message
stored): a crash before that makes Telegram post it again. A small aiohttp server
(aiohttp is already how Hearth talks HTTP) that checks Telegram's secret header.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import SecretStr
from telegram import Bot, Update

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ("message",)

Handle = Callable[[Update], Awaitable[None]]


class WebhookReceiver:
    """Serves `POST <url path>` on `listen:port` until stopped, after `setWebhook`."""

    def __init__(self, bot: Bot, handle: Handle, url: str, listen: str, port: int, secret: SecretStr) -> None:
        self._bot = bot
        self._handle = handle
        self._url = url
        self._listen = listen
        self._port = port
        self._secret = secret

    async def run(self, stopping: asyncio.Event) -> None:
        app = web.Application()
        app.router.add_post("/" + urlsplit(self._url).path.strip("/"), self._post)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._listen, self._port).start()
            await self._bot.set_webhook(
                self._url, allowed_updates=ALLOWED_UPDATES, secret_token=self._secret.get_secret_value(),
            )
            await stopping.wait()
        finally:
            await runner.cleanup()

    async def _post(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given, self._secret.get_secret_value()):
            return web.Response(status=403)
        try:
            update = Update.de_json(json.loads(await request.text()), self._bot)
        except (ValueError, TypeError, KeyError):
            log.warning("Telegram posted an update that could not be read; ignored")
            return web.Response(status=200)  # posting it again would not help
        await self._handle(update)
        return web.Response(status=200)
