"""Hearth on Telegram: python-telegram-bot's Application, driven by Hearth's runner.

`run()` drives PTB's lifecycle by hand (initialize, start, long polling or a
webhook, then stop) because `run_polling` would own the event loop and the
signals, which belong to Hearth's runner. Updates from different chats are
processed concurrently; within one conversation the core answers in arrival
order, so each handler hands its message to the core before its first await.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import SecretStr
from telegram import Bot, Message, ReplyParameters, Update
from telegram.error import BadRequest, TelegramError
from telegram.ext import Application, ApplicationBuilder, CommandHandler, ContextTypes, MessageHandler
from telegram.ext import filters as tg_filters
from telegram.request import HTTPXRequest

from adapters.base import ReplyLimits
from adapters.telegram.admins import AdminCache
from adapters.telegram.commands import CHINESE, COMMANDS, HELP_COMMANDS, help_text, menu, parse_command
from adapters.telegram.incoming import (
    PLATFORM,
    BotIdentity,
    addressed_text,
    conversation_key,
    is_anonymous_admin,
    is_from_other_bot,
    is_private,
    to_incoming,
)
from adapters.telegram.outgoing import ShownTexts, TelegramApiError, file_url, target, typing
from adapters.telegram.pacing import PacedRequests, Pacing
from adapters.telegram.redact import guarded_logs
from bot import i18n
from bot.errors import ConfigError
from bot.logs import redact
from bot.messages import ConversationKey
from bot.settings import Settings
from bot.splitting import split_message, utf16_len

if TYPE_CHECKING:
    from bot.core import Hearth

log = logging.getLogger(__name__)

MAX_CHARS = 4096  # Telegram's limit, in UTF-16 code units
NOT_MODIFIED = "message is not modified"
ALLOWED_UPDATES = ("message",)
NEW_MESSAGES = tg_filters.UpdateType.MESSAGE  # not edits, not channel posts
TEXT_MESSAGES = NEW_MESSAGES & tg_filters.TEXT & ~tg_filters.COMMAND

App = Application[Any, Any, Any, Any, Any, Any]


class TelegramAdapter:
    """Private chats, groups and forum topics, answered by the core; commands for admins."""

    platform = PLATFORM

    def __init__(self, core: Hearth, settings: Settings, pacing: Pacing | None = None) -> None:
        if settings.telegram_token is None:
            raise ConfigError(["HEARTH_TELEGRAM_TOKEN: required for the Telegram adapter"])
        self._core = core
        self._settings = settings
        self._pacing = pacing or Pacing()
        self._webhook_secret = SecretStr(_webhook_secret(settings))
        self._secrets = [settings.telegram_token, self._webhook_secret]
        self.limits = ReplyLimits(MAX_CHARS, self._pacing.edit_interval, utf16_len)
        self._admins = AdminCache(self._pacing.admin_cache_ttl)
        self._shown = ShownTexts()
        self._stopping = asyncio.Event()
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._app: App | None = None
        self._me = BotIdentity(0, "")

    # --- lifecycle -------------------------------------------------------

    async def run(self) -> None:
        """Serve until `stop()`: long polling, or a webhook when HEARTH_TELEGRAM_WEBHOOK_URL is set."""
        if self._stopping.is_set():
            return
        requests = (HTTPXRequest(), HTTPXRequest(connection_pool_size=1))  # API calls, getUpdates
        with guarded_logs(self._secrets):
            app = self._app = self._build(*requests)
            try:
                async with app:
                    await self._serve(app)
            except TelegramError as exc:  # PTB quotes the token when getMe rejects it
                raise TelegramApiError("start-up", self._scrub(str(exc))) from None
            finally:  # PTB leaves its HTTP clients open when getMe fails
                for request in requests:
                    await request.shutdown()

    async def stop(self) -> None:
        """Stop serving; replies in flight get `Pacing.shutdown_grace` seconds to finish."""
        self._stopping.set()

    async def _serve(self, app: App) -> None:
        self._me = BotIdentity(app.bot.id, app.bot.username)
        await self._register_commands(app.bot)
        await app.start()
        try:
            mode = await self._start_updates(app)
            log.info("Telegram: serving @%s by %s", self._me.username, mode)
            await self._stopping.wait()
        finally:
            await self._wind_down(app)

    async def _start_updates(self, app: App) -> str:
        updater = app.updater
        assert updater is not None, "built with the default Updater"
        url = self._settings.telegram_webhook_url
        if not url:
            await updater.start_polling(
                timeout=dt.timedelta(seconds=self._pacing.poll_timeout), allowed_updates=ALLOWED_UPDATES,
                bootstrap_retries=self._pacing.max_retries, error_callback=_log_polling_error,
            )
            return "long polling"
        await updater.start_webhook(
            listen=self._settings.telegram_webhook_listen, port=self._settings.telegram_webhook_port,
            url_path=urlsplit(url).path.strip("/"), webhook_url=url, allowed_updates=ALLOWED_UPDATES,
            secret_token=self._webhook_secret.get_secret_value(), bootstrap_retries=self._pacing.max_retries,
        )
        return "webhook"

    async def _wind_down(self, app: App) -> None:
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        await self._finish_in_flight()
        if app.running:
            await app.stop()

    async def _finish_in_flight(self) -> None:
        """Let replies in flight finish within the grace period, then cancel the rest."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._pacing.shutdown_grace
        while self._in_flight and (left := deadline - loop.time()) > 0:
            await asyncio.wait(set(self._in_flight), timeout=left)
        self._closing = True
        for task in self._in_flight:
            task.cancel()
        if self._in_flight:
            await asyncio.wait(set(self._in_flight))

    def _build(self, request: HTTPXRequest, updates_request: HTTPXRequest) -> App:
        base = self._settings.telegram_base_url
        app: App = (
            ApplicationBuilder()
            .token(self._settings.telegram_token.get_secret_value())  # type: ignore[union-attr]
            .base_url(base)
            .base_file_url(file_url(base))
            .request(request)
            .get_updates_request(updates_request)
            .concurrent_updates(self._pacing.concurrent_updates)
            .rate_limiter(PacedRequests(self._pacing))
            .build()
        )
        app.add_handler(CommandHandler(list(COMMANDS), self._on_command, filters=NEW_MESSAGES))
        app.add_handler(MessageHandler(TEXT_MESSAGES, self._on_text))
        app.add_error_handler(self._on_error)
        return app

    async def _register_commands(self, bot: Bot) -> None:
        try:
            await bot.set_my_commands(menu())
            await bot.set_my_commands(menu(CHINESE), language_code=CHINESE)
        except TelegramError as exc:  # the bot works without its menu
            log.warning("could not register the command menu: %s", exc)

    # --- updates ---------------------------------------------------------

    async def _on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or self._closing or is_from_other_bot(message):
            return
        text = addressed_text(message, self._me)
        if not text:
            return
        msg = to_incoming(message, text)
        # No await before `core.handle`: messages reach the core in arrival order.
        with self._tracked():
            async with typing(self._bot, msg.key, self._pacing.typing_every):
                await self._core.handle(msg, self)

    async def _on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or self._closing or is_from_other_bot(message):
            return
        name, args = parse_command(message.text or "")
        key = conversation_key(message)
        with self._tracked():
            async with typing(self._bot, key, self._pacing.typing_every):
                reply = await self._command_reply(message, name, args)
            await self._post(key, reply, reply_to=str(message.message_id))

    async def _command_reply(self, message: Message, name: str, args: str) -> str:
        if name in HELP_COMMANDS:
            return help_text(self._settings.bot_name, self._me.username)
        msg = to_incoming(message, message.text or "", admin=await self._is_admin(message))
        try:
            return await self._core.command(msg, name, args)
        except Exception:  # the outer boundary of a command: the user hears of it
            log.exception("/%s in %s failed", name, msg.key)
            return i18n.text("internal_error", self._core.language(args))

    async def _is_admin(self, message: Message) -> bool:
        """A group's administrator or creator (HEARTH_ADMIN_IDS is the core's to check)."""
        if is_private(message):
            return False
        if is_anonymous_admin(message):
            return True
        user = message.from_user
        if user is None or message.sender_chat is not None:  # someone posting as a channel
            return False
        if f"{PLATFORM}:{user.id}" in self._settings.admin_ids:
            return True  # the core would say yes anyway: spare the API call
        return await self._admins.is_admin(self._bot, message.chat.id, user.id)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        error = context.error
        log.error("a Telegram update failed: %s", error, exc_info=error)

    @contextmanager
    def _tracked(self) -> Iterator[None]:
        """Remember the task answering an update, so `stop()` can bound it."""
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        try:
            yield
        finally:
            self._in_flight.discard(task)

    # --- replies -----------------------------------------------------------

    async def send(self, key: ConversationKey, text: str, *, reply_to: str | None = None) -> str:
        """Post `text` as plain text (no parse mode: no markup for Telegram to reject).

        In a group the first part quotes the message it answers; a private chat needs no quote."""
        chat_id, thread = target(key)
        quote = None
        if reply_to is not None and reply_to.isdigit() and chat_id < 0:
            quote = ReplyParameters(int(reply_to), allow_sending_without_reply=True)
        try:
            sent = await self._bot.send_message(
                chat_id, text, message_thread_id=thread, reply_parameters=quote
            )
        except TelegramError as exc:
            raise TelegramApiError("sendMessage", self._scrub(str(exc))) from exc
        self._shown.put(key.channel, str(sent.message_id), text)
        return str(sent.message_id)

    async def edit(self, key: ConversationKey, message_id: str, text: str) -> None:
        if self._shown.get(key.channel, message_id) == text:
            return  # Telegram rejects an edit that changes nothing
        chat_id, _ = target(key)
        try:
            await self._bot.edit_message_text(text, chat_id=chat_id, message_id=int(message_id))
        except BadRequest as exc:
            if NOT_MODIFIED not in exc.message.lower():
                raise TelegramApiError("editMessageText", self._scrub(str(exc))) from exc
        except TelegramError as exc:
            raise TelegramApiError("editMessageText", self._scrub(str(exc))) from exc
        self._shown.put(key.channel, message_id, text)

    async def _post(self, key: ConversationKey, text: str, reply_to: str) -> None:
        """A command's answer, in as many messages as it takes."""
        try:
            for index, part in enumerate(split_message(text, MAX_CHARS, utf16_len)):
                await self.send(key, part, reply_to=reply_to if index == 0 else None)
        except TelegramApiError as exc:
            log.warning("could not answer a command in %s: %s", key, exc)

    @property
    def _bot(self) -> Bot:
        if self._app is None:
            raise RuntimeError("the Telegram adapter is not running")
        bot: Bot = self._app.bot
        return bot

    def _scrub(self, text: str) -> str:
        return redact(text, self._secrets)


def _webhook_secret(settings: Settings) -> str:
    """The configured secret, else a fresh one each start (setWebhook is sent every start)."""
    secret = settings.telegram_webhook_secret
    return secret.get_secret_value() if secret else secrets.token_urlsafe(32)


def _log_polling_error(error: TelegramError) -> None:
    log.warning("polling Telegram failed (will retry): %s", error)
