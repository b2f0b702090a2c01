"""Hearth on Discord: messages in, streamed replies out, slash commands from the table.

Messages are taken one at a time, in the order the gateway delivered them, and
stored (`Inbox.submit`); answering runs in tasks the pipeline owns, so channels
are answered concurrently and each conversation in order. The process runs the
gateway shards `DiscordConfig` names (all, by default). A rejected token, at
start-up or on a reconnect, ends `run()` with `PlatformAuthError`; a shard count
Discord refuses with `ConfigError`; a shard that stays disconnected longer than
`down_s` seconds with `PlatformDownError`: the process exits rather than running
deaf.
discord.py waits out 429s and retries 500/502/504/524 itself (five tries); a 503,
which it does not retry, or a dropped connection is retried here, twice. A message
Discord rejects (4xx) raises `bot.errors.DeliveryError`, which the core logs and
turns into a short apology.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import aiohttp
import discord

from adapters.discord.client import (
    IDENTIFY_INTERVAL_S,
    MAX_CHARS,
    NO_MENTIONS,
    DiscordConfig,
    HearthClient,
    endpoints,
)
from adapters.discord.commands import HelpTranslator, render
from adapters.discord.convert import (
    PLATFORM,
    channel_id,
    conversation_key,
    from_message,
    is_chat,
    mentions_bot,
    replies_to_bot,
)
from adapters.discord.interactions import SlashAnswers
from adapters.discord.liveness import ShardLiveness
from bot.errors import ConfigError, DeliveryError, HearthError, PlatformAuthError
from bot.messages import ConversationKey, IncomingMessage
from bot.ports import ReplyLimits
from bot.tasks import TaskOwner

if TYPE_CHECKING:
    from bot.commands import Commands
    from bot.commands.builtin import ChannelModes
    from bot.ports import Inbox

log = logging.getLogger(__name__)

EDIT_INTERVAL_S = 1.0  # Discord allows about 5 edits per 5 s per channel
GUILD_READY_TIMEOUT_S = 2.0  # discord.py's default wait for GUILD_CREATEs after READY
RETRY_DELAY_S = 1.0
SERVER_RETRIES = 2
TYPING_REFRESH_S = 8.0  # Discord shows "typing…" for about 10 s per request
# discord.py already retried 500/502/504/524 five times before raising them.
RETRIED_HERE = frozenset({503})
AUTH_CLOSE_CODES = frozenset({4004})  # authentication failed
SHARD_CLOSE_CODES = {  # the gateway's word on a shard setting, as the setting's error
    4010: "HEARTH_DISCORD_SHARD_IDS: Discord refused a shard as invalid (gateway closed with 4010)",
    4011: "HEARTH_DISCORD_SHARD_COUNT: too few shards for this bot's servers (gateway closed with 4011);"
          " raise it, the same in every process, or unset it to use Discord's recommendation",
}
INTENTS_HINT = "the Message Content intent is not enabled for this bot (developer portal → Bot)"

T = TypeVar("T")


class DiscordAdapter:
    """The Discord platform adapter. `run()` serves until `stop()`.

    Messages go to `inbox`, slash commands to `commands`; `modes` says which
    channels want every message answered. `edit_interval`, `guild_ready_timeout`,
    `retry_delay` and `identify_interval` exist for tests; the defaults suit Discord."""

    platform = PLATFORM

    def __init__(
        self,
        config: DiscordConfig,
        inbox: Inbox,
        commands: Commands,
        modes: ChannelModes,
        *,
        edit_interval: float = EDIT_INTERVAL_S,
        guild_ready_timeout: float = GUILD_READY_TIMEOUT_S,
        retry_delay: float = RETRY_DELAY_S,
        identify_interval: float = IDENTIFY_INTERVAL_S,
    ) -> None:
        self.limits = ReplyLimits(max_chars=MAX_CHARS, edit_interval=edit_interval, spoiler=spoiler)
        self._config = config
        self._inbox = inbox
        self._modes = modes
        self._retry_delay = retry_delay
        self._tasks = TaskOwner("discord")
        self._stopping = False
        self._liveness = ShardLiveness(config.down_s)
        self._arrivals: asyncio.Queue[discord.Message] = asyncio.Queue()
        self._typing: dict[ConversationKey, tuple[asyncio.Task[None], set[asyncio.Task[None]]]] = {}
        slash = render(commands, SlashAnswers(commands, self._tasks))
        self._client = HearthClient(
            config, self._on_message, slash, HelpTranslator(), self._liveness,
            guild_ready_timeout=guild_ready_timeout, identify_interval=identify_interval,
        )

    async def run(self) -> None:
        """Log in, sync the slash commands and serve; reconnects are discord.py's.

        Raises PlatformAuthError (token rejected), ConfigError (shards refused) or
        PlatformDownError (a shard gone too long)."""
        if self._stopping:
            return
        self._tasks.spawn(self._take_arrivals(), "discord-intake")
        with endpoints(self._config.api_base, self._config.gateway_url):
            async with self._client:
                gateway = self._tasks.spawn(self._serve(), "discord-gateway")
                # A task of its own: discord.py may be deep in a reconnect back-off when a
                # shard has been down too long, so closing the client alone would not end run().
                watch = self._tasks.spawn(self._liveness.watch(self._client.close), "discord-liveness")
                await asyncio.wait((gateway, watch), return_when=asyncio.FIRST_COMPLETED)
                error = _outcome(watch) or _outcome(gateway)
                for task in (gateway, watch):
                    task.cancel()
                await asyncio.wait((gateway, watch))
        if error is not None:
            raise error

    async def _serve(self) -> HearthError | None:
        """The gateway until the client closes; why Discord refused us, as the error to raise."""
        try:
            await self._client.start(self._config.token.get_secret_value())
        except discord.LoginFailure as exc:
            return PlatformAuthError(PLATFORM, str(exc))
        except discord.PrivilegedIntentsRequired:
            return PlatformAuthError(PLATFORM, INTENTS_HINT)
        except discord.ConnectionClosed as exc:
            if exc.code in AUTH_CLOSE_CODES:
                return PlatformAuthError(PLATFORM, f"gateway closed with {exc.code}")
            if exc.code in SHARD_CLOSE_CODES:
                return ConfigError([SHARD_CLOSE_CODES[exc.code]])
            raise
        return None

    async def stop(self) -> None:
        """Stop the background work, then disconnect. Idempotent."""
        self._stopping = True
        await self._tasks.close()
        await self._client.close()

    async def wait_until_ready(self) -> None:
        """Until every shard's gateway session is up and its servers are loaded."""
        await self._liveness.ready.wait()

    async def send(self, key: ConversationKey, text: str, *, reply_to: str | None = None) -> str:
        """Post `text` in the conversation, quoting `reply_to` when it is a Discord message id."""
        channel = self._client.get_partial_messageable(channel_id(key))
        if reply_to is not None and reply_to.isdigit():
            reference = discord.MessageReference(
                message_id=int(reply_to), channel_id=channel.id, fail_if_not_exists=False,
            )
            message = await self._deliver(
                key, lambda: channel.send(text, reference=reference, allowed_mentions=NO_MENTIONS)
            )
        else:
            message = await self._deliver(key, lambda: channel.send(text, allowed_mentions=NO_MENTIONS))
        return str(message.id)

    async def edit(self, key: ConversationKey, message_id: str, text: str) -> None:
        """Replace the text of a message the bot posted."""
        message = self._client.get_partial_messageable(channel_id(key)).get_partial_message(int(message_id))
        await self._deliver(key, lambda: message.edit(content=text, allowed_mentions=NO_MENTIONS))

    async def delete(self, key: ConversationKey, message_id: str) -> None:
        """Remove a message the bot posted."""
        message = self._client.get_partial_messageable(channel_id(key)).get_partial_message(int(message_id))
        await self._deliver(key, message.delete)

    async def notify(self, user_id: str, text: str) -> None:
        """A direct message to one user (an operator), e.g. that the engine died."""
        key = ConversationKey(PLATFORM, f"dm-{user_id}")

        async def send() -> discord.Message:
            user = await self._client.fetch_user(int(user_id))
            return await user.send(text[:MAX_CHARS], allowed_mentions=NO_MENTIONS)

        await self._deliver(key, send)

    async def _deliver(self, key: ConversationKey, call: Callable[[], Awaitable[T]]) -> T:
        """One send, edit or delete, retried a few times on server errors and dropped connections."""
        for attempt in range(SERVER_RETRIES + 1):
            try:
                return await call()
            except (discord.HTTPException, aiohttp.ClientConnectionError) as exc:
                error = _delivery_error(exc)
                transient = error.status == 0 or error.status in RETRIED_HERE
                if not transient or attempt == SERVER_RETRIES:
                    log.warning("Discord did not take a message in %s: %s", key, error)
                    raise error from exc
                log.warning("Discord failed in %s (%s); retrying", key, error)
                await asyncio.sleep(self._retry_delay * (attempt + 1))
        raise AssertionError("unreachable")

    def _on_message(self, message: discord.Message) -> None:
        if self._stopping or not is_chat(message):
            return
        self._arrivals.put_nowait(message)

    async def _take_arrivals(self) -> None:
        """One message at a time, in gateway order: each is stored before the next is looked at."""
        while True:
            message = await self._arrivals.get()
            try:
                await self._take(message)
            except Exception:  # the outer boundary of one message's intake
                log.exception("message %s in channel %s failed", message.id, message.channel.id)

    async def _take(self, message: discord.Message) -> None:
        msg = await self._normalise(message)
        if msg is None:
            return
        answering = await self._inbox.submit(msg, self)
        if answering is not None:
            self._typing_while(answering, msg.key, message.channel)

    def _typing_while(
        self, task: asyncio.Task[None], key: ConversationKey, channel: discord.abc.Messageable
    ) -> None:
        """Show "typing…" while any of the conversation's messages is being answered: one
        indicator per conversation, however many messages wait in it."""
        if key not in self._typing:
            self._typing[key] = (self._tasks.spawn(_keep_typing(channel), f"discord-typing-{key}"), set())
        indicator, answering = self._typing[key]
        answering.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            answering.discard(finished)
            if not answering and self._typing.get(key, (None, None))[0] is indicator:
                indicator.cancel()
                del self._typing[key]

        task.add_done_callback(done)

    async def _normalise(self, message: discord.Message) -> IncomingMessage | None:
        """The message as Hearth sees it, or None when it is not for the bot (or empty)."""
        me = self._client.user
        if me is None:
            return None
        addressed = mentions_bot(message, me.id) or replies_to_bot(message, me.id)
        if not addressed and message.guild is not None:
            addressed = await self._modes.answers_all(conversation_key(message.channel))
        msg = from_message(message, me.id, addresses_bot=addressed)
        return msg if msg.addresses_bot and msg.text else None


async def _keep_typing(channel: discord.abc.Messageable) -> None:
    """Show "typing…" until cancelled; a failure here must not stop the reply."""
    try:
        while True:
            await channel.typing()
            await asyncio.sleep(TYPING_REFRESH_S)
    except (discord.HTTPException, aiohttp.ClientConnectionError) as exc:
        log.info("typing indicator failed: %s", exc)


def spoiler(text: str) -> str:
    """Discord's spoiler: hidden until clicked (a `||` inside would end it early)."""
    return "||" + text.replace("||", "|\u200b|") + "||"


def _outcome(task: asyncio.Task[HearthError | None]) -> BaseException | None:
    """What a finished task of `run()` ended with: the error it returned or raised; None
    while it runs, when it was cancelled (stop()) or ended cleanly."""
    if not task.done() or task.cancelled():
        return None
    return task.exception() or task.result()


def _delivery_error(exc: discord.HTTPException | aiohttp.ClientConnectionError) -> DeliveryError:
    """The core's error for a failed call; Discord's own error code stays in the reason."""
    if isinstance(exc, discord.HTTPException):
        text = exc.text or exc.response.reason or ""
        return DeliveryError(PLATFORM, exc.status, f"{text} (code {exc.code})")
    return DeliveryError(PLATFORM, 0, f"connection failed: {exc.__class__.__name__}")
