"""The discord.py client Hearth drives, and where it connects to.

discord.py reads its endpoints from two class attributes, `Route.BASE` (REST)
and `DiscordWebSocket.DEFAULT_GATEWAY` (the gateway websocket), so they are
process-wide: `endpoints()` sets them while the adapter runs and puts the old
values back afterwards. Reconnects use the `resume_gateway_url` Discord sends.
"""

from __future__ import annotations

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

from bot.errors import DeliveryError, PlatformAuthError

API_BASE = "https://discord.com/api/v10"
GATEWAY_URL = "wss://gateway.discord.gg/"
PLATFORM = "discord"
MAX_CHARS = 2000  # Discord's limit on a message's content
NO_MENTIONS = discord.AllowedMentions.none()  # model output must never ping anyone

OnMessage = Callable[[discord.Message], None]
SlashCommand = app_commands.Command[Any, ..., None] | app_commands.Group


@dataclass(frozen=True, slots=True)
class DiscordConfig:
    """What the adapter needs to connect: the bot token and Discord's endpoints
    (an emulator, a proxy or a test fake may stand in for them)."""

    token: SecretStr
    api_base: str = API_BASE
    gateway_url: str = GATEWAY_URL
    down_s: float = 300.0  # the gateway down this long (seconds) ends run() with an error


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


class HearthClient(discord.Client):
    """Publishes the slash commands at start-up and hands every message to `on_message_cb`."""

    def __init__(
        self,
        on_message_cb: OnMessage,
        on_ready_cb: Callable[[], None],
        commands: Sequence[SlashCommand],
        on_disconnect_cb: Callable[[], None],
        translator: app_commands.Translator,
        *,
        guild_ready_timeout: float,
    ) -> None:
        # Hearth has no voice: discord.py's warnings about voice libraries only confuse owners.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        super().__init__(
            intents=intents(), allowed_mentions=NO_MENTIONS, guild_ready_timeout=guild_ready_timeout,
        )
        self.tree: app_commands.CommandTree[discord.Client] = app_commands.CommandTree(self)
        for command in commands:
            self.tree.add_command(command)
        self._translator = translator
        self._on_message_cb = on_message_cb
        self._on_ready_cb = on_ready_cb
        self._on_disconnect_cb = on_disconnect_cb

    async def setup_hook(self) -> None:
        """Runs after login, before the gateway connects: publish the commands, localised."""
        await self.tree.set_translator(self._translator)
        await self.tree.sync()

    async def on_ready(self) -> None:
        self._on_ready_cb()

    async def on_resumed(self) -> None:
        self._on_ready_cb()

    async def on_disconnect(self) -> None:
        self._on_disconnect_cb()

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
