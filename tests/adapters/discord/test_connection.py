"""Logging in, the gateway connection, stopping, and keeping the token secret."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path

import pytest
from pydantic import SecretStr

from adapters.discord import check_token
from bot.app.platforms import discord_config
from bot.errors import PlatformAuthError, PlatformDownError
from engine.registry import Registry
from tests.adapters.discord.fake_discord import FakeDiscord
from tests.adapters.discord.harness import WAIT_S, Running, hearth_on, reply_to, running
from tests.adapters.discord.payloads import MESSAGE_CONTENT_INTENT, TOKEN
from tests.conftest import make_settings


async def test_the_message_content_intent_is_requested(hearth: Running) -> None:
    assert hearth.fake.identify is not None
    assert hearth.fake.identify["intents"] & MESSAGE_CONTENT_INTENT


async def test_stop_ends_run_and_is_idempotent(tmp_path: Path, registry: Registry) -> None:
    async with running(tmp_path, registry) as env:
        await env.adapter.stop()
        await env.adapter.stop()


async def test_a_dropped_gateway_connection_is_resumed(hearth: Running) -> None:
    await hearth.fake.drop_connection()
    await hearth.fake.wait_for(lambda: hearth.fake.resumes == 1)

    mid = await hearth.fake.user_message("still there?", mention=True)

    assert (await reply_to(hearth.fake, mid, "there?"))[0].text == "echo: ⟦Bob⟧: still there?"


async def test_a_bad_token_ends_run_with_a_login_error(tmp_path: Path, registry: Registry) -> None:
    async with (
        FakeDiscord() as fake,
        hearth_on(fake, tmp_path, registry, discord_token="x") as (_, _, adapter),
    ):
        with pytest.raises(PlatformAuthError) as caught:
            await asyncio.wait_for(adapter.run(), WAIT_S)
        assert caught.value.platform == "discord"


async def test_a_disallowed_message_content_intent_ends_run_with_a_clear_error(
    tmp_path: Path, registry: Registry
) -> None:
    async with FakeDiscord() as fake, hearth_on(fake, tmp_path, registry) as (_, _, adapter):
        fake.allow_message_content = False
        with pytest.raises(PlatformAuthError, match="developer portal"):
            await asyncio.wait_for(adapter.run(), WAIT_S)


async def test_the_token_is_never_logged(
    tmp_path: Path, registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running(tmp_path, registry) as env:
        mid = await env.fake.user_message("hi", mention=True)
        await reply_to(env.fake, mid, "hi")

    assert caplog.records
    assert not [r for r in caplog.records if TOKEN in r.getMessage()]


async def test_a_token_revoked_while_running_ends_run_with_an_auth_error(
    tmp_path: Path, registry: Registry
) -> None:
    async with FakeDiscord() as fake, hearth_on(fake, tmp_path, registry) as (_, _, adapter):
        task = asyncio.create_task(adapter.run())
        await asyncio.wait_for(adapter.wait_until_ready(), WAIT_S)

        await fake.drop_connection(code=4004)  # Discord: authentication failed

        with pytest.raises(PlatformAuthError):
            await asyncio.wait_for(task, WAIT_S)


async def test_a_gateway_gone_for_too_long_ends_run_with_an_error(tmp_path: Path, registry: Registry) -> None:
    async with (
        FakeDiscord() as fake,
        hearth_on(fake, tmp_path, registry, platform_down_s=1.0) as (_, _, adapter),
    ):
        task = asyncio.create_task(adapter.run())
        await asyncio.wait_for(adapter.wait_until_ready(), WAIT_S)

        fake.gateway_down = True
        await fake.drop_connection()

        with pytest.raises(PlatformDownError):
            await asyncio.wait_for(task, WAIT_S * 3)


async def test_the_token_check_tells_a_rejected_token_before_anything_starts(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        good = discord_config(make_settings(tmp_path, discord_token=TOKEN, discord_api_base=fake.api_base,
                                            discord_gateway_url=fake.gateway_url))
        bad = dataclasses.replace(good, token=SecretStr("not-the-token"))

        assert await check_token(good) == "hearth"
        with pytest.raises(PlatformAuthError):
            await check_token(bad)
