"""Hearth on Telegram: python-telegram-bot's Application, driven by Hearth's runner.

`run()` drives PTB's lifecycle by hand (initialize, start, long polling or a
webhook, then stop) because `run_polling` would own the event loop and the
signals, which belong to Hearth's runner. Updates from different chats are
processed concurrently; each answer runs in a task the adapter owns, so `stop()`
can bound them. Within one conversation the core answers in arrival order, so a
message is handed to the core with no await between arriving (or being decided
on, `ArrivalOrder`) and the hand-over.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import SecretStr
from telegram import Bot, Message, ReplyParameters, Update
from telegram.error import BadRequest, TelegramError
from telegram.ext import CommandHandler, ContextTypes, MessageHandler
from telegram.ext import filters as tg_filters
from telegram.request import HTTPXRequest

from adapters.telegram.admins import AdminCache, GroupAdmins
from adapters.telegram.application import App, build_application, start_updates
from adapters.telegram.arrivals import ArrivalOrder
from adapters.telegram.commands import (
    CHINESE,
    WELCOME_COMMANDS,
    for_telegram,
    handled_names,
    menu,
    parse_command,
    welcome,
)
from adapters.telegram.config import TelegramConfig
from adapters.telegram.incoming import (
    PLATFORM,
    BotIdentity,
    addressed_text,
    conversation_key,
    is_from_other_bot,
    to_incoming,
)
from adapters.telegram.outgoing import ShownTexts, TelegramApiError, delivery_error, keep_typing, target
from adapters.telegram.pacing import Pacing
from adapters.telegram.redact import guarded_logs
from bot.commands import Commands
from bot.commands.builtin import ChannelModes
from bot.errors import DeliveryError
from bot.logs import redact
from bot.messages import ConversationKey, IncomingMessage
from bot.ports import Inbox, ReplyLimits
from bot.splitting import split_message, utf16_len
from bot.tasks import TaskOwner

log = logging.getLogger(__name__)

MAX_CHARS = 4096  # Telegram's limit, in UTF-16 code units
NOT_MODIFIED = "message is not modified"
NEW_MESSAGES = tg_filters.UpdateType.MESSAGE  # not edits, not channel posts
TEXT_MESSAGES = NEW_MESSAGES & tg_filters.TEXT & ~tg_filters.COMMAND


class TelegramAdapter:
    """Private chats, groups and forum topics, answered through the inbox; the command table."""

    platform = PLATFORM

    def __init__(
        self, config: TelegramConfig, inbox: Inbox, commands: Commands, modes: ChannelModes,
        pacing: Pacing | None = None,
    ) -> None:
        self._config = config
        self._inbox = inbox
        self._commands = commands
        self._modes = modes
        self._pacing = pacing or Pacing()
        self._webhook_secret = SecretStr(_webhook_secret(config))
        self._secrets = [config.token, self._webhook_secret]
        self.limits = ReplyLimits(MAX_CHARS, self._pacing.edit_interval, utf16_len)
        self._admins = GroupAdmins(config.operators, AdminCache(self._pacing.admin_cache_ttl))
        self._shown = ShownTexts()
        self._arrivals = ArrivalOrder()
        self._tasks = TaskOwner("telegram")
        self._stopping = asyncio.Event()
        self._closing = False
        self._app: App | None = None
        self._me = BotIdentity(0, "")

    # --- lifecycle -------------------------------------------------------

    async def run(self) -> None:
        """Serve until `stop()`: long polling, or a webhook when `config.webhook_url` is set."""
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
            mode = await start_updates(app, self._config, self._pacing, self._webhook_secret)
            log.info("Telegram: serving @%s by %s", self._me.username, mode)
            await self._stopping.wait()
        finally:
            await self._wind_down(app)

    async def _wind_down(self, app: App) -> None:
        """Stop fetching, let replies in flight finish within the grace period, cancel the rest."""
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if not await self._tasks.wait(self._pacing.shutdown_grace):
            log.info("Telegram: cancelling %d replies still in flight", len(self._tasks))
        self._closing = True
        await self._tasks.close()
        if app.running:
            await app.stop()

    def _build(self, request: HTTPXRequest, updates_request: HTTPXRequest) -> App:
        app = build_application(self._config, self._pacing, request, updates_request)
        names = handled_names(self._commands)
        app.add_handler(CommandHandler(names, self._on_command, filters=NEW_MESSAGES))
        app.add_handler(MessageHandler(TEXT_MESSAGES, self._on_text))
        app.add_error_handler(self._on_error)
        return app

    async def _register_commands(self, bot: Bot) -> None:
        try:
            await bot.set_my_commands(menu(self._commands))
            await bot.set_my_commands(menu(self._commands, CHINESE), language_code=CHINESE)
        except TelegramError as exc:  # the bot works without its menu
            log.warning("could not register the command menu: %s", exc)

    # --- messages ----------------------------------------------------------

    async def _on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or self._closing or is_from_other_bot(message):
            return
        async with self._arrivals.turn(conversation_key(message)):
            msg = await self._to_answer(message)
        if msg is not None:  # no await since the turn ended: the inbox gets it in arrival order
            await self._owned(self._answer(msg), f"telegram-message-{msg.key}-{msg.message_id}")

    async def _to_answer(self, message: Message) -> IncomingMessage | None:
        """The message for the core, or None: not addressed (and the chat is not set to
        answer everything), or nothing left once the mention is removed."""
        text = addressed_text(message, self._me)
        if text is not None:
            return to_incoming(message, text) if text else None
        if message.text and await self._modes.answers_all(conversation_key(message)):
            return to_incoming(message, message.text, addressed=False)
        return None

    async def _answer(self, msg: IncomingMessage) -> None:
        # The first await hands `msg` over: the typing task only starts after it.
        with self._typing(msg.key):
            await self._inbox.handle(msg, self)

    # --- commands ----------------------------------------------------------

    async def _on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or self._closing or is_from_other_bot(message):
            return
        name = f"telegram-command-{message.chat.id}-{message.message_id}"
        await self._owned(self._answer_command(message), name)

    async def _answer_command(self, message: Message) -> None:
        key = conversation_key(message)
        name, args = parse_command(message.text or "")
        with self._typing(key):
            reply = await self._command_reply(message, name, args)
        await self._post(key, for_telegram(reply, self._commands), reply_to=str(message.message_id))

    async def _command_reply(self, message: Message, name: str, args: str) -> str:
        """The table's answer (it checks who may run what); /start and /help: the welcome."""
        if name in WELCOME_COMMANDS:
            return welcome(self._commands, self._config.bot_name, self._me.username)
        msg = to_incoming(message, message.text or "")
        if not self._commands.allowed(msg, name, args):  # only then is it worth asking Telegram
            admin = await self._admins.author_of(self._bot, message)
            msg = to_incoming(message, message.text or "", admin=admin)
        return await self._commands.run(msg, name, args)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        error = context.error
        log.error("a Telegram update failed: %s", error, exc_info=error)

    # --- owned tasks ---------------------------------------------------------

    async def _owned(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run `work` in a task `stop()` can bound and cancel; the update's handler waits for it."""
        if self._closing:
            work.close()
            return
        await asyncio.wait([self._tasks.spawn(work, name)])

    @contextmanager
    def _typing(self, key: ConversationKey) -> Iterator[None]:
        """Show "typing…" in `key` while the block runs (entering does not suspend)."""
        every = self._pacing.typing_every
        task = self._tasks.spawn(keep_typing(self._bot, key, every), f"telegram-typing-{key}")
        try:
            yield
        finally:
            task.cancel()

    # --- replies -----------------------------------------------------------

    async def send(self, key: ConversationKey, text: str, *, reply_to: str | None = None) -> str:
        """Post `text` as plain text (no parse mode: no markup for Telegram to reject).

        In a group the first part quotes the message it answers; a private chat needs no quote."""
        chat_id, thread = target(key)
        quote = None
        if reply_to is not None and reply_to.isdigit() and chat_id < 0:
            quote = ReplyParameters(int(reply_to), allow_sending_without_reply=True)
        with self._delivering():
            sent = await self._bot.send_message(
                chat_id, text, message_thread_id=thread, reply_parameters=quote
            )
        self._shown.put(key.channel, str(sent.message_id), text)
        return str(sent.message_id)

    async def edit(self, key: ConversationKey, message_id: str, text: str) -> None:
        """Replace a sent message's text; an edit that changes nothing is not sent."""
        if self._shown.get(key.channel, message_id) == text:
            return  # Telegram rejects an edit that changes nothing
        chat_id, _ = target(key)
        with self._delivering():
            try:
                await self._bot.edit_message_text(text, chat_id=chat_id, message_id=int(message_id))
            except BadRequest as exc:
                if NOT_MODIFIED not in exc.message.lower():
                    raise
        self._shown.put(key.channel, message_id, text)

    async def delete(self, key: ConversationKey, message_id: str) -> None:
        """Remove a message the bot sent (Bot API deleteMessage)."""
        chat_id, _ = target(key)
        with self._delivering():
            await self._bot.delete_message(chat_id, int(message_id))
        self._shown.forget(key.channel, message_id)

    async def notify(self, user_id: str, text: str) -> None:
        """A direct message to one person (an operator), who must have started a chat with
        the bot: Telegram refuses (403) to write first."""
        if not user_id.isdigit():
            raise DeliveryError(PLATFORM, 400, f"{user_id!r} is not a Telegram user id")
        for part in split_message(text, MAX_CHARS, utf16_len):
            await self.send(ConversationKey(PLATFORM, user_id), part)

    @contextmanager
    def _delivering(self) -> Iterator[None]:
        """Telegram's refusal (after the retries) as the core's `DeliveryError`, token scrubbed."""
        try:
            yield
        except TelegramError as exc:
            raise delivery_error(exc, self._scrub(str(exc))) from exc

    async def _post(self, key: ConversationKey, text: str, reply_to: str) -> None:
        """A command's answer, in as many messages as it takes."""
        try:
            for index, part in enumerate(split_message(text, MAX_CHARS, utf16_len)):
                await self.send(key, part, reply_to=reply_to if index == 0 else None)
        except DeliveryError as exc:
            log.warning("could not answer a command in %s: %s", key, exc)

    @property
    def _bot(self) -> Bot:
        if self._app is None:
            raise RuntimeError("the Telegram adapter is not running")
        bot: Bot = self._app.bot
        return bot

    def _scrub(self, text: str) -> str:
        return redact(text, self._secrets)


def _webhook_secret(config: TelegramConfig) -> str:
    """The configured secret, else a fresh one each start (setWebhook is sent every start)."""
    secret = config.webhook_secret
    return secret.get_secret_value() if secret else secrets.token_urlsafe(32)
