"""Hearth on Discord: messages in, streamed replies out, slash commands from the table.

Messages are taken one at a time, in the order the gateway delivered them, and
stored (`Inbox.submit`); answering runs in tasks the pipeline owns, so channels
are answered concurrently and each conversation in order. The process runs the
gateway shards `DiscordConfig` names (all, by default). A rejected token, at
start-up or on a reconnect, ends `run()` with `PlatformAuthError`; a shard count
Discord refuses with `ConfigError`; a shard that stays disconnected longer than
`down_s` seconds with `PlatformDownError`: the process exits rather than running
deaf. After any other failure `run()` may be called again (the runner's supervisor
does): each run has a discord.py client of its own, while the adapter object, which
replies in flight hold as their channel, stays the same.
After every new gateway session (not a RESUME) the recent history of the channels
where Hearth could have been asked something is read back (`catchup`): what was sent
while no session was live is never delivered otherwise.
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

from adapters.discord.catchup import CatchUp
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
    for_another_bot,
    from_message,
    is_chat,
    mentions_bot,
    replies_to_bot,
)
from adapters.discord.interactions import SlashAnswers
from adapters.discord.liveness import ShardLiveness
from bot.errors import ConfigError, DeliveryError, HearthError, PlatformAuthError, StoreUnavailableError
from bot.messages import ConversationKey, IncomingMessage
from bot.ports import ReplyLimits
from bot.splitting import truncate
from bot.tasks import TaskOwner

if TYPE_CHECKING:
    from bot.commands import Commands
    from bot.commands.builtin import ChannelModes
    from bot.ports import Inbox
    from bot.store import RecentActivity

log = logging.getLogger(__name__)

EDIT_INTERVAL_S = 1.0  # Discord allows about 5 edits per 5 s per channel
GUILD_READY_TIMEOUT_S = 2.0  # discord.py's default wait for GUILD_CREATEs after READY
RETRY_DELAY_S = 1.0
SERVER_RETRIES = 2
TYPING_REFRESH_S = 8.0  # Discord shows "typing…" for about 10 s per request
READY_WAIT_S = 60.0  # a reply waits this long for a client that is (re)connecting
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
    channels want every message answered; `activity` says where people talked lately,
    for reading back what a gateway gap hid. `edit_interval`, `guild_ready_timeout`,
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
        activity: RecentActivity | None = None,
    ) -> None:
        self.limits = ReplyLimits(max_chars=MAX_CHARS, edit_interval=edit_interval, spoiler=spoiler)
        self._config = config
        self._inbox = inbox
        self._modes = modes
        self._retry_delay = retry_delay
        self._tasks = TaskOwner("discord")
        self._stopping = False
        self._liveness = ShardLiveness(config.down_s)
        self._catch_up = CatchUp(activity, config.catch_up_s)
        self._session = asyncio.Event()  # a shard has a new session: read back what it missed
        self.catch_ups = 0  # read-backs finished (one per new session, or per burst of them)
        self._connected = asyncio.Event()  # the client of the current run is logged in
        self._arrivals: asyncio.Queue[discord.Message] = asyncio.Queue()
        self._intake: asyncio.Task[None] | None = None
        self._typing: dict[ConversationKey, tuple[asyncio.Task[None], set[asyncio.Task[None]]]] = {}
        self._slash = render(commands, SlashAnswers(commands, self._tasks))
        self._timings = (guild_ready_timeout, identify_interval)
        self._client = self._new_client()
        self._runs = 0
        self._bot_id: int | None = None  # known from the first session on

    def _new_client(self) -> HearthClient:
        guild_ready_timeout, identify_interval = self._timings
        return HearthClient(
            self._config, self._on_message, self._slash, HelpTranslator(), self._liveness,
            guild_ready_timeout=guild_ready_timeout, identify_interval=identify_interval,
            on_session=self._new_session,
        )

    async def run(self) -> None:
        """Log in, sync the slash commands and serve; reconnects are discord.py's.

        Raises PlatformAuthError (token rejected), ConfigError (shards refused) or
        PlatformDownError (a shard gone too long); after anything else it may be called again."""
        if self._stopping:
            return
        if self._intake is None:  # one for the adapter's life: messages queued stay in order
            self._intake = self._tasks.spawn(self._take_arrivals(), "discord-intake")
        if self._runs:  # a discord.py client closed by a failure is not started again
            self._client = self._new_client()
        self._runs += 1
        client = self._client
        try:
            with endpoints(self._config.api_base, self._config.gateway_url):
                async with client:
                    error = await self._serve_until_done(client)
        finally:
            self._connected.clear()
        if error is not None:
            raise error

    async def _serve_until_done(self, client: HearthClient) -> BaseException | None:
        """The gateway, its liveness and the catch-ups, until one of the first two ends."""
        gateway = self._tasks.spawn(self._serve(client), "discord-gateway")
        # A task of its own: discord.py may be deep in a reconnect back-off when a
        # shard has been down too long, so closing the client alone would not end run().
        watch = self._tasks.spawn(self._liveness.watch(client.close), "discord-liveness")
        catching_up = self._tasks.spawn(self._catching_up(client), "discord-catch-up")
        await asyncio.wait((gateway, watch), return_when=asyncio.FIRST_COMPLETED)
        error = _outcome(watch) or _outcome(gateway)
        for task in (gateway, watch, catching_up):
            task.cancel()
        await asyncio.wait((gateway, watch, catching_up))
        return error

    async def _serve(self, client: HearthClient) -> HearthError | None:
        """The gateway until the client closes; why Discord refused us, as the error to raise."""
        try:
            await client.start(self._config.token.get_secret_value())
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
        """Disconnect, then stop the background work. Idempotent. Closing the client is what ends
        discord.py's `start()` (a cancel alone can be lost inside its gateway loop)."""
        self._stopping = True
        await self._client.close()
        await self._tasks.close()

    async def wait_until_ready(self) -> None:
        """Until every shard's gateway session is up and its servers are loaded."""
        await self._liveness.ready.wait()

    async def send(self, key: ConversationKey, text: str, *, reply_to: str | None = None) -> str:
        """Post `text` in the conversation, quoting `reply_to` when it is a Discord message id."""
        channel = (await self._rest()).get_partial_messageable(channel_id(key))
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
        message = await self._message(key, message_id)
        await self._deliver(key, lambda: message.edit(content=text, allowed_mentions=NO_MENTIONS))

    async def delete(self, key: ConversationKey, message_id: str) -> None:
        """Remove a message the bot posted."""
        message = await self._message(key, message_id)
        await self._deliver(key, message.delete)

    async def notify(self, user_id: str, text: str) -> None:
        """A direct message to one user (an operator), e.g. that the engine died."""
        key = ConversationKey(PLATFORM, f"dm-{user_id}")
        client = await self._rest()

        async def send() -> discord.Message:
            user = await client.fetch_user(int(user_id))
            return await user.send(truncate(text, MAX_CHARS), allowed_mentions=NO_MENTIONS)

        await self._deliver(key, send)

    async def _message(self, key: ConversationKey, message_id: str) -> discord.PartialMessage:
        channel = (await self._rest()).get_partial_messageable(channel_id(key))
        return channel.get_partial_message(int(message_id))

    async def _rest(self) -> HearthClient:
        """The client to call Discord's REST API with, once it is logged in: a reply may come
        before the connection (resumed at start-up) or while a failed client is replaced."""
        try:
            await asyncio.wait_for(self._connected.wait(), READY_WAIT_S)
        except TimeoutError:
            raise DeliveryError(PLATFORM, 0, "not connected to Discord") from None
        return self._client

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
        self._arrive(message)

    def _arrive(self, message: discord.Message) -> bool:
        """A message the gateway delivered (or a catch-up read back): queued once, in order,
        when a person wrote it; whether it was."""
        first = self._catch_up.seen.add(message.channel.id, message.id)
        if not first or self._stopping or not is_chat(message):
            return False
        self._arrivals.put_nowait(message)
        return True

    def _new_session(self, shard_id: int) -> None:
        """A shard has a new gateway session: what was sent before it is read back."""
        if self._client.user is not None:
            self._bot_id = self._client.user.id
        self._connected.set()
        self._session.set()

    async def _catching_up(self, client: HearthClient) -> None:
        """Read back what each new session missed; sessions starting meanwhile make one more."""
        while True:
            await self._session.wait()
            self._session.clear()
            taken = 0
            try:
                async for message in self._catch_up.missed(client):
                    taken += self._arrive(message)
            except StoreUnavailableError as exc:  # where people talked is unknown: the next session asks
                log.warning("could not read back what a Discord gap hid: %s", exc)
            if taken:
                log.warning("after a new Discord session, messages sent meanwhile and read back: %d", taken)
            self.catch_ups += 1

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
        bot_id = me.id if me is not None else self._bot_id  # a message queued before a restart
        if bot_id is None:
            return None
        me_name = me.name if me is not None else ""
        if me_name and for_another_bot(message, me_name):
            return None
        addressed = mentions_bot(message, bot_id) or replies_to_bot(message, bot_id)
        if not addressed and message.guild is None:
            addressed = True
        if not addressed and message.guild is not None:
            if not await self._modes.answers_all(conversation_key(message.channel)):
                return None
            # Answering every message: words only; an image posted to the channel is not a question.
            msg = from_message(message, bot_id, addresses_bot=False)
            return msg if msg.text else None
        msg = from_message(message, bot_id, addresses_bot=True)
        return msg if msg.text or msg.media else None


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
