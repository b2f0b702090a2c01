"""The discord.py client Hearth drives, and where it connects to.

discord.py reads its endpoints from two class attributes, `Route.BASE` (REST)
and `DiscordWebSocket.DEFAULT_GATEWAY` (the gateway websocket), so they are
process-wide: `endpoints()` sets them while the adapter runs and puts the old
values back afterwards. Reconnects use the `resume_gateway_url` Discord sends.

The client is sharded (`discord.AutoShardedClient`): one gateway connection per
shard this process runs, so several processes can split a big bot's servers
between them (`DiscordConfig.shard_count`, `shard_ids`). One shard is the same
as an unsharded client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route
from pydantic import SecretStr

from adapters.discord.liveness import ShardLiveness
from bot.errors import DeliveryError, PlatformAuthError

API_BASE = "https://discord.com/api/v10"
GATEWAY_URL = "wss://gateway.discord.gg/"
PLATFORM = "discord"
MAX_CHARS = 2000  # Discord's limit on a message's content
NO_MENTIONS = discord.AllowedMentions.none()  # model output must never ping anyone
IDENTIFY_INTERVAL_S = 5.0  # Discord: one IDENTIFY per 5 s (max_concurrency 1, as for most bots)

OnMessage = Callable[[discord.Message], None]
OnSession = Callable[[int], None]
SlashCommand = app_commands.Command[Any, ..., None] | app_commands.Group


@dataclass(frozen=True, slots=True)
class DiscordConfig:
    """What the adapter needs to connect: the bot token and Discord's endpoints
    (an emulator, a proxy or a test fake may stand in for them)."""

    token: SecretStr
    api_base: str = API_BASE
    gateway_url: str = GATEWAY_URL
    down_s: float = 300.0  # a shard down this long (seconds) ends run() with an error
    catch_up_s: float = 300.0  # after a new gateway session, read back messages this recent (seconds)
    shard_count: int | None = None  # None: as many as Discord recommends (GET /gateway/bot)
    shard_ids: tuple[int, ...] | None = None  # the shards this process runs; None: all of them

    def __post_init__(self) -> None:
        # HEARTH_DISCORD_SHARD_IDS is checked with a friendlier message in the settings.
        count, ids = self.shard_count, self.shard_ids
        if ids is not None and (count is None or not all(0 <= shard < count for shard in ids)):
            raise ValueError("shard_ids need a shard_count, and each id must be below it")

    @property
    def publishes_commands(self) -> bool:
        """Whether this process publishes the slash commands: the one that runs shard 0.
        The commands belong to the application, not to a shard, so one process is enough;
        exactly one runs shard 0, since Discord sends every DM there."""
        return self.shard_ids is None or 0 in self.shard_ids


@contextmanager
def endpoints(api_base: str, gateway_url: str) -> Iterator[None]:
    """Point discord.py at `api_base` and `gateway_url` (an emulator, a proxy, a test fake)."""
    saved = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    Route.BASE = api_base.rstrip("/")
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
    try:
        yield
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved


def intents() -> discord.Intents:
    """The default intents plus message content, which the developer portal must allow."""
    wanted = discord.Intents.default()
    wanted.message_content = True
    return wanted


class HearthClient(discord.AutoShardedClient):
    """Publishes the slash commands at start-up, hands every message to `on_message_cb`,
    reports each shard's connection to `liveness`, and tells `on_session` when a shard has
    a new gateway session (READY, its servers loaded: not a RESUME, which replays what the
    shard missed), since what was sent before it is never delivered."""

    def __init__(
        self,
        config: DiscordConfig,
        on_message_cb: OnMessage,
        commands: Sequence[SlashCommand],
        translator: app_commands.Translator,
        liveness: ShardLiveness,
        *,
        guild_ready_timeout: float,
        identify_interval: float = IDENTIFY_INTERVAL_S,
        on_session: OnSession | None = None,
    ) -> None:
        # Hearth has no voice: discord.py's warnings about voice libraries only confuse owners.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        super().__init__(
            intents=intents(), allowed_mentions=NO_MENTIONS, guild_ready_timeout=guild_ready_timeout,
            shard_count=config.shard_count,
        )
        # After super().__init__, which takes a list only (None is its default: all shards).
        self.shard_ids = None if config.shard_ids is None else list(config.shard_ids)
        self.tree: app_commands.CommandTree[discord.Client] = app_commands.CommandTree(self)
        for command in commands:
            self.tree.add_command(command)
        self._publish = config.publishes_commands
        self._translator = translator
        self._on_message_cb = on_message_cb
        self._liveness = liveness
        self._identify_interval = identify_interval
        self._on_session = on_session

    async def setup_hook(self) -> None:
        """Runs after login, before the gateway connects: settle the shard count, and
        publish the commands, localised (shard 0's process only)."""
        if self.shard_count is None:
            # Asked here rather than left to discord.py, which would then connect to the
            # URL Discord names instead of the configured gateway (an emulator, a proxy).
            self.shard_count, _, _ = await self.http.get_bot_gateway()
        await self.tree.set_translator(self._translator)
        if self._publish:
            await self.tree.sync()

    async def launch_shard(self, gateway: yarl.URL, shard_id: int, *, initial: bool = False) -> None:
        """discord.py connects a shard here, again every 5 s until it succeeds (silently):
        the shard counts as down from the first try. Nothing to do once closed."""
        if self.is_closed():
            return
        self._liveness.down(shard_id)
        await super().launch_shard(gateway, shard_id, initial=initial)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """Keep Discord's pace of one IDENTIFY per `identify_interval` (its 5 s; less in tests)."""
        if not initial:
            await asyncio.sleep(self._identify_interval)

    async def on_ready(self) -> None:
        self._liveness.all_ready()

    async def on_shard_connect(self, shard_id: int) -> None:
        self._liveness.up(shard_id)

    async def on_shard_resumed(self, shard_id: int) -> None:
        self._liveness.up(shard_id)

    async def on_shard_ready(self, shard_id: int) -> None:
        if self._on_session is not None:
            self._on_session(shard_id)

    async def on_shard_disconnect(self, shard_id: int) -> None:
        self._liveness.down(shard_id)

    async def on_message(self, message: discord.Message) -> None:
        self._on_message_cb(message)


async def check_token(config: DiscordConfig) -> str:
    """Ask Discord who the token belongs to (before the model loads); the bot's name.

    Raises PlatformAuthError when Discord rejects the token, DeliveryError when it
    cannot be asked now."""
    client = discord.Client(intents=intents())
    with endpoints(config.api_base, config.gateway_url):
        try:
            await client.login(config.token.get_secret_value())
            return str(client.user)
        except discord.LoginFailure as exc:
            raise PlatformAuthError(PLATFORM, str(exc)) from None
        except (discord.HTTPException, aiohttp.ClientError, OSError) as exc:
            raise DeliveryError(PLATFORM, 0, f"{type(exc).__name__}: {exc}") from None
        finally:
            await client.close()
