"""Per-channel models: an admin pins a channel to a model the engines serve."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app.builder import App, HearthBuilder
from bot.messages import ConversationKey
from bot.moderation import AllowAllGate
from tests.conftest import make_settings
from tests.engine.fake_openai import FakeOpenAI
from tests.fakes import RecordingAdapter, message

HERE = ConversationKey("telegram", "here")
THERE = ConversationKey("telegram", "there")


def admin(key: ConversationKey) -> object:
    return message("", "a", key, author="mod", admin=True, direct=False)


async def test_in_process_only_the_loaded_model_may_be_pinned(app: App) -> None:
    assert await app.commands.run(admin(HERE), "model", "demo channel") == "This channel is answered by demo."

    refused = await app.commands.run(admin(HERE), "model", "demo-awq channel")

    assert refused.startswith("Unknown model demo-awq. Known models: demo")
    assert "This channel is pinned to demo." in await app.commands.run(admin(HERE), "model")


async def test_a_member_cannot_pin_a_channel(app: App) -> None:
    member = message("", "m", HERE, author="someone", direct=False)

    assert (await app.commands.run(member, "model", "demo channel")).startswith("Sorry, only admins")


@pytest.fixture
async def two_models() -> AsyncIterator[FakeOpenAI]:
    server = await FakeOpenAI(models=("small", "large")).start()
    yield server
    await server.stop()


async def test_with_remote_servers_a_channel_is_answered_by_its_pinned_model(
    tmp_path: Path, two_models: FakeOpenAI
) -> None:
    settings = make_settings(tmp_path, engine_kind="remote", engine_urls=two_models.url, model="small",
                             engine_health_interval_s=0.05, engine_start_wait_s=5)
    adapter = RecordingAdapter()
    async with HearthBuilder(settings).gate(AllowAllGate()).build() as app:
        listing = await app.commands.run(admin(HERE), "model")
        pinned = await app.commands.run(admin(HERE), "model", "large channel")
        await app.pipeline.handle(message("hi", "1", HERE), adapter)
        await app.pipeline.handle(message("hi", "2", THERE), adapter)
        unpinned = await app.commands.run(admin(HERE), "model", "default channel")
        await app.pipeline.handle(message("again", "3", HERE), adapter)
        status = await app.commands.run(admin(HERE), "status")

    assert "* small" in listing and "  large" in listing
    assert pinned == "This channel is answered by large."
    assert unpinned == "This channel is answered by small."
    assert [seen.body["model"] for seen in two_models.chats] == ["large", "small", "small"]
    assert f"replica {two_models.url}: up, 3 replies" in status and "prefix-cache hit rate" in status


async def test_a_channel_admin_pins_only_among_the_models_the_operator_allowed(
    tmp_path: Path, two_models: FakeOpenAI
) -> None:
    settings = make_settings(tmp_path, engine_kind="remote", engine_urls=two_models.url, model="small",
                             engine_health_interval_s=0.05, engine_start_wait_s=5, channel_models="small")
    async with HearthBuilder(settings).gate(AllowAllGate()).build() as app:
        refused = await app.commands.run(admin(HERE), "model", "large channel")
        allowed = await app.commands.run(admin(HERE), "model", "small channel")

    assert refused.startswith("Unknown model large. Known models: small")
    assert allowed == "This channel is answered by small."
