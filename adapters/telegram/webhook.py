"""Webhook mode: Telegram posts each update; it counts as delivered when we answer 200.

So the answer is sent only after the update was handed over (and the message
stored): a crash before that makes Telegram post it again, and so does a 503 when
the store could not commit it (`StoreUnavailableError`). An update that cannot be
read, or whose handling fails unexpectedly, is answered 200 and logged (its id,
never its text): posting it again would fail again. A small aiohttp server
(aiohttp is already how Hearth talks HTTP) that checks Telegram's secret header.

It faces the internet, so it is bounded (`adapters.telegram.guard`): at most
MAX_CONNECTIONS connections, none idle before its request for more than HEADER_TIMEOUT_S,
a body read within BODY_TIMEOUT_S and at most MAX_BODY_BYTES, an idle keep-alive
connection closed after IDLE_TIMEOUT_S; Telegram is asked to open at most
TELEGRAM_CONNECTIONS at once.
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

from adapters.telegram.guard import ConnectionGuard
from bot.errors import StoreUnavailableError

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ("message",)
TELEGRAM_CONNECTIONS = 40  # setWebhook's max_connections (Telegram's default)
MAX_CONNECTIONS = 128  # open at once, Telegram's and anyone else's
HEADER_TIMEOUT_S = 10.0  # from connecting to a request's headers
BODY_TIMEOUT_S = 10.0  # to read a request's body
IDLE_TIMEOUT_S = 30.0  # a keep-alive connection between requests
MAX_BODY_BYTES = 1 << 20  # an update is a few kilobytes
BACKLOG = 128

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
        self._guard: ConnectionGuard | None = None

    async def run(self, stopping: asyncio.Event) -> None:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post("/" + urlsplit(self._url).path.strip("/"), self._post)
        runner = web.AppRunner(app, access_log=None, keepalive_timeout=IDLE_TIMEOUT_S)
        await runner.setup()
        server: asyncio.Server | None = None
        try:
            assert runner.server is not None, "set up"
            self._guard = ConnectionGuard(runner.server, MAX_CONNECTIONS, HEADER_TIMEOUT_S)
            loop = asyncio.get_running_loop()
            server = await loop.create_server(self._guard.protocol, self._listen, self._port, backlog=BACKLOG,
                                              reuse_address=True)
            await self._bot.set_webhook(
                self._url, allowed_updates=ALLOWED_UPDATES, secret_token=self._secret.get_secret_value(),
                max_connections=TELEGRAM_CONNECTIONS,
            )
            await stopping.wait()
        finally:
            if server is not None:
                server.close()
            await runner.cleanup()

    @property
    def guard(self) -> ConnectionGuard | None:
        """The running server's connections (None before `run`)."""
        return self._guard

    async def _post(self, request: web.Request) -> web.Response:
        if self._guard is not None:
            self._guard.started(request.transport)
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given, self._secret.get_secret_value()):
            return web.Response(status=403)
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):
                await request.read()
        except TimeoutError:
            return web.Response(status=408, headers={"Connection": "close"})
        update = await self._read(request)
        if update is None:
            return web.Response(status=200)  # posting it again would not help
        try:
            await self._handle(update)
        except StoreUnavailableError as exc:
            log.warning("update %d not stored (%s); answered 503", update.update_id, exc.reason)
            return web.Response(status=503)
        except Exception:  # the boundary of one update: a bug must not fail every later post
            log.warning("Telegram update %d failed in handling; skipped", update.update_id, exc_info=True)
        return web.Response(status=200)

    async def _read(self, request: web.Request) -> Update | None:
        """The posted update, or None (logged with its id, if it has one) when it cannot be read."""
        raw: object = None
        try:
            raw = json.loads(await request.text())
            return Update.de_json(raw, self._bot)  # type: ignore[arg-type]
        except Exception as exc:  # the boundary of one update from outside: any shape may come
            update_id = raw.get("update_id") if isinstance(raw, dict) else None
            log.warning("Telegram update %s could not be read (%s); skipped", update_id, type(exc).__name__)
            return None
