"""Hearth serving Discord against the fake, and waiting for what it shows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.discord import DiscordAdapter
from bot.app.builder import App, HearthBuilder
from bot.app.platforms import discord_config
from bot.messages import ConversationKey, StoredMessage
from bot.store import SqliteStore
from engine.fake import FakeEngine
from engine.registry import Registry
from tests.adapters.discord.fake_discord import FakeDiscord, Interaction, Posted
from tests.adapters.discord.payloads import CHANNEL_ID, TOKEN
from tests.conftest import TODAY, make_settings

WAIT_S = 5.0
CHANNEL = ConversationKey("discord", str(CHANNEL_ID))


@dataclass
class Running:
    """Hearth serving `fake`: its adapter, the app it runs on, and the fake engine it answers with."""

    fake: FakeDiscord
    adapter: DiscordAdapter
    app: App
    engine: FakeEngine


@asynccontextmanager
async def hearth_on(
    fake: FakeDiscord, tmp_path: Path, registry: Registry, engine: FakeEngine | None = None, **settings: Any
) -> AsyncIterator[tuple[App, FakeEngine, DiscordAdapter]]:
    """Hearth as `hearth run` wires it (fake engine, SQLite in tmp) and its Discord adapter,
    pointed at `fake`."""
    config = make_settings(tmp_path, discord_api_base=fake.api_base, discord_gateway_url=fake.gateway_url,
                           **{"discord_token": TOKEN, **settings})
    engine = engine or FakeEngine(registry.get("demo"), delay=0.02)
    await engine.start()
    async with SqliteStore(config.database) as store:
        builder = HearthBuilder(config).engine(engine).store(store).registry(registry).today(lambda: TODAY)
        async with builder.build() as app:
            adapter = DiscordAdapter(
                discord_config(config), app.pipeline, app.commands, app.modes,
                edit_interval=0.05, guild_ready_timeout=0.05, retry_delay=0.05, identify_interval=0.05,
                activity=app.store,
            )
            yield app, engine, adapter


@asynccontextmanager
async def running(
    tmp_path: Path, registry: Registry, engine: FakeEngine | None = None, **settings: Any
) -> AsyncIterator[Running]:
    """Hearth serving Discord, connected to a fresh fake Discord; stopped afterwards."""
    async with FakeDiscord() as fake:
        async with serving(fake, tmp_path, registry, engine, **settings) as env:
            yield env
        assert fake.unexpected == []


@asynccontextmanager
async def serving(
    fake: FakeDiscord, tmp_path: Path, registry: Registry, engine: FakeEngine | None = None, **settings: Any
) -> AsyncIterator[Running]:
    """Hearth serving `fake` (other Hearths may serve it too), ready; stopped afterwards.
    Several at once must stop in the reverse order they started: discord.py's endpoints
    are process-wide, and each run puts back what it found."""
    async with hearth_on(fake, tmp_path, registry, engine, **settings) as (app, used_engine, adapter):
        task = asyncio.create_task(adapter.run())
        try:
            await _until_ready(adapter, task)
            yield Running(fake, adapter, app, used_engine)
        finally:
            await adapter.stop()
            await asyncio.wait_for(task, WAIT_S)


async def _until_ready(adapter: DiscordAdapter, task: asyncio.Task[None]) -> None:
    """Until the client is ready and its first session's read-back has finished (a test
    that drops the connection at once would otherwise race it: the read-back would find
    the channel of a message delivered after the session began, and read it again)."""
    ready = asyncio.create_task(adapter.wait_until_ready())
    await asyncio.wait([ready, task], timeout=WAIT_S, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # raises why run() ended
    assert ready.done(), "the client never became ready"
    for _ in range(int(WAIT_S / 0.01)):
        if adapter.catch_ups or task.done():
            break
        await asyncio.sleep(0.01)
    assert adapter.catch_ups, "the first session was never read back"


async def reply_to(fake: FakeDiscord, message_id: int, ending: str) -> list[Posted]:
    """The bot's messages answering `message_id`, once the last one ends with `ending`."""

    def complete() -> list[Posted] | None:
        parts = fake.replies_to(message_id)
        return parts if parts and parts[-1].text.endswith(ending) else None

    parts = await fake.wait_for(complete)
    assert parts is not None
    return parts


async def answered(interaction: Interaction, fake: FakeDiscord) -> str:
    """The text the bot finally showed for a slash command."""
    await fake.wait_for(lambda: interaction.messages)
    return interaction.messages[-1]


async def stored(app: App, key: ConversationKey, count: int) -> list[StoredMessage]:
    """The history of `key` once it holds `count` messages (a reply is stored after it shows)."""
    async with asyncio.timeout(WAIT_S):
        # The store has no change notification: a bounded poll.
        while len(history := await app.store.history(key)) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    return history
