"""Hearth on Telegram: updates in (long polling or a webhook), replies out, the command table.

Each update is handed over in arrival order and the message stored before
Telegram is told it arrived (`Poller`, `WebhookReceiver`); answering then runs in
a task the pipeline owns, so nothing waiting for its turn holds up the next
update. Commands run in tasks the adapter owns. A rejected token or Telegram
unreachable for HEARTH_PLATFORM_DOWN_S (at start-up too) ends `run()` with an error:
the process exits instead of running deaf. After any other failure `run()` may be
called again (the runner's supervisor does): the adapter object stays the same, so
replies in flight keep their channel.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from pydantic import SecretStr
from telegram import Message, Update
from telegram.error import BadRequest, ChatMigrated, TelegramError
from telegram.request import HTTPXRequest

from adapters.telegram.admins import AdminCache, GroupAdmins
from adapters.telegram.commands import (
    CHINESE,
    WELCOME_COMMANDS,
    command_in,
    for_telegram,
    handled_names,
    menu,
    welcome,
)
from adapters.telegram.config import TelegramConfig
from adapters.telegram.connection import Bot, build_bot, start
from adapters.telegram.incoming import (
    PLATFORM,
    BotIdentity,
    addressed_text,
    body,
    conversation_key,
    for_another_bot,
    is_answered_sender,
    to_incoming,
    well_formed,
)
from adapters.telegram.migration import ChannelMoves, Migrations, migration_of
from adapters.telegram.outgoing import (
    ShownTexts,
    TelegramApiError,
    delivery_error,
    keep_typing,
    quote_of,
    target,
)
from adapters.telegram.pacing import Pacing
from adapters.telegram.polling import Poller
from adapters.telegram.reachability import Reachability, pause
from adapters.telegram.redact import guarded_logs
from adapters.telegram.webhook import WebhookReceiver
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
READY_WAIT_S = 60.0  # a reply resumed at start-up waits this long for the connection


class TelegramAdapter:
    """Private chats, groups and forum topics, answered through the inbox; the command table.

    `moves` is told when a group becomes a supergroup (a new chat id), to move what is
    stored about it; without it, only sends follow the group."""

    platform = PLATFORM

    def __init__(
        self, config: TelegramConfig, inbox: Inbox, commands: Commands, modes: ChannelModes,
        pacing: Pacing | None = None, *, moves: ChannelMoves | None = None,
    ) -> None:
        self._config = config
        self._inbox = inbox
        self._commands = commands
        self._modes = modes
        self._pacing = pacing or Pacing()
        self._webhook_secret = SecretStr(_webhook_secret(config))
        self._secrets = [config.token, self._webhook_secret]
        self.limits = ReplyLimits(MAX_CHARS, self._pacing.edit_interval, utf16_len)
        admin_cache = AdminCache(self._pacing.admin_cache_ttl)
        self._admins = GroupAdmins(config.operators, admin_cache)
        self._migrations = Migrations(moves, admin_cache)
        self._shown = ShownTexts()
        self._reach = Reachability(config.down_s)  # for the adapter's life: across restarts of run()
        self._tasks = TaskOwner("telegram")
        self._stopping = asyncio.Event()
        self._ready = asyncio.Event()
        self._typing: dict[ConversationKey, tuple[asyncio.Task[None], set[asyncio.Task[None]]]] = {}
        self._bot_client: Bot | None = None
        self._me = BotIdentity(0, "")
        self._names = frozenset(handled_names(commands))

    # --- lifecycle -------------------------------------------------------

    async def run(self) -> None:
        """Serve until `stop()`: long polling, or a webhook when `config.webhook_url` is set.

        Raises PlatformAuthError (token rejected) or PlatformDownError (unreachable too long);
        after anything else it may be called again."""
        if self._stopping.is_set():
            return
        requests = (HTTPXRequest(), HTTPXRequest(connection_pool_size=1))  # API calls, getUpdates
        self._tasks = TaskOwner("telegram")  # the last run closed its own
        with guarded_logs(self._secrets):
            bot = self._bot_client = build_bot(self._config, self._pacing, *requests)
            try:
                if await self._start(bot):
                    await self._serve(bot)
            finally:
                self._ready.clear()
                await self._tasks.close()
                self._typing.clear()  # their indicators were the closed owner's
                for request in requests:  # also when getMe failed: PTB would leave them open
                    await request.shutdown()

    async def stop(self) -> None:
        """Stop taking updates (the last ones are confirmed); `run()` then returns. Idempotent."""
        self._stopping.set()

    async def wait_until_ready(self) -> None:
        """Until the bot is connected and may send."""
        await self._ready.wait()

    async def _start(self, bot: Bot) -> bool:
        """getMe until Telegram answers; Telegram unreachable now counts toward
        HEARTH_PLATFORM_DOWN_S as it does while polling. False when stopped first."""
        while not self._stopping.is_set():
            sent = self._reach.now()
            try:
                async with self._reach.bounded():
                    await start(bot, self._config)
            except (TelegramApiError, TimeoutError) as exc:
                said = exc.reason if isinstance(exc, TelegramApiError) else None
                wait = self._reach.failed(sent, said)  # raises PlatformDownError past down_s
                log.warning("Telegram did not answer at start-up (%s); retrying in %.1f s",
                            said or "no answer in time", wait)
                await pause(self._stopping, wait)
                continue
            self._reach.ok()
            return True
        return False

    async def _serve(self, bot: Bot) -> None:
        self._me = BotIdentity(bot.id, bot.username)
        await self._register_commands(bot)
        self._ready.set()
        if self._config.webhook_url:
            receiver = WebhookReceiver(
                bot, self._on_update, self._config.webhook_url, self._config.webhook_listen,
                self._config.webhook_port, self._webhook_secret,
            )
            log.info("Telegram: serving @%s by webhook", self._me.username)
            await receiver.run(self._stopping)
            return
        poller = Poller(bot, self._on_update, poll_timeout=self._pacing.poll_timeout,
                        reach=self._reach, scrub=self._scrub)
        log.info("Telegram: serving @%s by long polling", self._me.username)
        await poller.run(self._stopping)

    async def _register_commands(self, bot: Bot) -> None:
        try:
            await bot.set_my_commands(menu(self._commands))
            await bot.set_my_commands(menu(self._commands, CHINESE), language_code=CHINESE)
        except TelegramError as exc:  # the bot works without its menu
            log.warning("could not register the command menu: %s", self._scrub(str(exc)))

    # --- updates -------------------------------------------------------------

    async def _on_update(self, update: Update) -> None:
        """One update, in arrival order: a message is stored before this returns."""
        message = update.message
        if message is None:
            return
        if not well_formed(message):
            log.warning("Telegram update %d: a message of an unexpected shape; skipped", update.update_id)
            return
        if (migration := migration_of(message)) is not None:
            await self._chat_moved(*migration)
            return
        if not is_answered_sender(message):
            return
        command = command_in(message, self._me.username, self._names)
        if command is not None:
            name = f"telegram-command-{message.chat.id}-{message.message_id}"
            self._tasks.spawn(self._answer_command(message, *command), name)
            return
        msg = await self._to_answer(message)
        if msg is None:
            return
        answering = await self._inbox.submit(msg, self)
        if answering is not None:
            self._typing_while(answering, msg.key)

    async def _to_answer(self, message: Message) -> IncomingMessage | None:
        """The message for the core, or None: a command for another bot; not addressed (and
        the chat is not set to answer everything, or it is, but nothing was written); or
        neither words nor media left once the mention is removed."""
        if for_another_bot(message, self._me):
            return None
        text = addressed_text(message, self._me)
        if text is not None:
            msg = to_incoming(message, text, me=self._me)
            return msg if msg.text or msg.media else None
        if body(message) and await self._modes.answers_all(conversation_key(message)):
            return to_incoming(message, body(message), addressed=False, me=self._me)
        return None

    def _typing_while(self, task: asyncio.Task[None], key: ConversationKey) -> None:
        """Show "typing…" in `key` while any of its messages is being answered: one
        indicator per conversation, however many messages wait in it."""
        if key not in self._typing:
            indicator = self._tasks.spawn(self._keep_typing(key), f"typing-{key}")
            self._typing[key] = (indicator, set())
        indicator, answering = self._typing[key]
        answering.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            answering.discard(finished)
            if not answering and self._typing.get(key, (None, None))[0] is indicator:
                indicator.cancel()
                del self._typing[key]

        task.add_done_callback(done)

    def _keep_typing(self, key: ConversationKey) -> Coroutine[Any, Any, None]:
        """Typing shown in `key`'s chat, wherever it moves meanwhile."""
        return keep_typing(self._bot, lambda: self._target(key), self._pacing.typing_every, self._chat_moved)

    # --- a group upgraded to a supergroup -----------------------------------------

    async def _chat_moved(self, old: int, new: int) -> int:
        """Follow a group to its new id (see `migration`); returns the new id. A reply still
        being written there is stored under the old id when it ends: move once more then."""
        await self._migrations.moved(old, new)
        answering = {t for k, (_, tasks) in self._typing.items() if k.channel == str(old) for t in tasks}
        if answering and self._ready.is_set():  # once not ready, the task owner is closing
            self._tasks.spawn(self._move_after(answering, old, new), f"telegram-move-{old}")
        return new

    async def _move_after(self, answering: set[asyncio.Task[None]], old: int, new: int) -> None:
        await asyncio.wait(answering)
        await self._migrations.moved(old, new)

    # --- commands ----------------------------------------------------------

    async def _answer_command(self, message: Message, name: str, args: str) -> None:
        """The table's gates first (who may talk to Hearth, the rate limits): a refused command
        costs the chat at most one notice, no "typing…"; then the answer, "typing…" meanwhile."""
        key = conversation_key(message)
        refused = await self._commands.gate(to_incoming(message, message.text or ""))
        if refused is not None:
            reply = refused
        else:
            typing = self._tasks.spawn(self._keep_typing(key), f"typing-{key}")
            try:
                reply = await self._command_reply(message, name, args)
            finally:
                typing.cancel()
        if reply:  # "": nothing to send
            await self._post(key, for_telegram(reply, self._commands), reply_to=str(message.message_id))

    async def _command_reply(self, message: Message, name: str, args: str) -> str:
        """The table's answer (it checks who may run what); /start and /help: the welcome."""
        msg = to_incoming(message, message.text or "")
        if name in WELCOME_COMMANDS:
            lang = self._commands.language(msg, args)
            return welcome(self._commands, self._config.bot_name, self._me.username, lang)
        if self._commands.asks_admin(msg, name, args):  # only then is it worth asking Telegram
            admin = await self._admins.author_of(self._bot, message)
            msg = to_incoming(message, message.text or "", admin=admin)
        return await self._commands.run(msg, name, args, gated=True)

    # --- replies -----------------------------------------------------------

    async def send(self, key: ConversationKey, text: str, *, reply_to: str | None = None) -> str:
        """Post `text` as plain text (no parse mode: no markup for Telegram to reject).

        In a group the first part quotes the message it answers; a private chat needs no quote.
        A group upgraded to a supergroup is followed to its new id, and sent to there."""
        chat_id, thread = self._target(key)
        quote = quote_of(key, chat_id, reply_to)
        bot = await self._connected()
        async with self._delivering(chat_id):
            try:
                sent = await bot.send_message(chat_id, text, message_thread_id=thread, reply_parameters=quote)
            except ChatMigrated as exc:  # upgraded, not heard of yet: follow; no quote (ids differ there)
                chat_id = await self._chat_moved(chat_id, exc.new_chat_id)
                sent = await bot.send_message(chat_id, text)
        self._shown.put(key.channel, str(sent.message_id), text)
        return str(sent.message_id)

    async def edit(self, key: ConversationKey, message_id: str, text: str) -> None:
        """Replace a sent message's text; an edit that changes nothing is not sent."""
        if self._shown.get(key.channel, message_id) == text:
            return  # Telegram rejects an edit that changes nothing
        chat_id, _ = self._target(key)
        bot = await self._connected()
        async with self._delivering(chat_id):
            try:
                await bot.edit_message_text(text, chat_id=chat_id, message_id=int(message_id))
            except BadRequest as exc:
                if NOT_MODIFIED not in exc.message.lower():
                    raise
        self._shown.put(key.channel, message_id, text)

    async def delete(self, key: ConversationKey, message_id: str) -> None:
        """Remove a message the bot sent (Bot API deleteMessage)."""
        chat_id, _ = self._target(key)
        bot = await self._connected()
        async with self._delivering(chat_id):
            await bot.delete_message(chat_id, int(message_id))
        self._shown.forget(key.channel, message_id)

    async def notify(self, user_id: str, text: str) -> None:
        """A direct message to one person (an operator), who must have started a chat with
        the bot: Telegram refuses (403) to write first."""
        if not user_id.isdigit():
            raise DeliveryError(PLATFORM, 400, f"{user_id!r} is not a Telegram user id")
        for part in split_message(text, MAX_CHARS, utf16_len):
            await self.send(ConversationKey(PLATFORM, user_id), part)

    @asynccontextmanager
    async def _delivering(self, chat_id: int) -> AsyncIterator[None]:
        """Telegram's refusal (after the retries) as the core's `DeliveryError`, token scrubbed.
        A message in a group that was upgraded since is out of reach; the group is followed."""
        try:
            yield
        except TelegramError as exc:
            if isinstance(exc, ChatMigrated):
                await self._chat_moved(chat_id, exc.new_chat_id)
            raise delivery_error(exc, self._scrub(str(exc))) from exc

    def _target(self, key: ConversationKey) -> tuple[int, int | None]:
        """The chat (its newest id) and forum topic a conversation key names."""
        chat_id, thread = target(key)
        return self._migrations.chat_of(chat_id), thread

    async def _post(self, key: ConversationKey, text: str, reply_to: str) -> None:
        """A command's answer, in as many messages as it takes."""
        try:
            for index, part in enumerate(split_message(text, MAX_CHARS, utf16_len)):
                await self.send(key, part, reply_to=reply_to if index == 0 else None)
        except DeliveryError as exc:
            log.warning("could not answer a command in %s: %s", key, exc)

    @property
    def _bot(self) -> Bot:
        if self._bot_client is None:
            raise RuntimeError("the Telegram adapter is not running")
        return self._bot_client

    async def _connected(self) -> Bot:
        """The bot once connected: a reply resumed at start-up may come before the connection."""
        try:
            await asyncio.wait_for(self._ready.wait(), READY_WAIT_S)
        except TimeoutError:
            raise DeliveryError(PLATFORM, 0, "not connected to Telegram") from None
        return self._bot

    def _scrub(self, text: str) -> str:
        return redact(text, self._secrets)


def _webhook_secret(config: TelegramConfig) -> str:
    """The configured secret, else a fresh one each start (setWebhook is sent every start)."""
    secret = config.webhook_secret
    return secret.get_secret_value() if secret else secrets.token_urlsafe(32)
