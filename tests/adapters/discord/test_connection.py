"""Logging in, the gateway connection, stopping, and keeping the token secret."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import discord
import pytest

from engine.registry import Registry
from tests.adapters.discord.fake_discord import MESSAGE_CONTENT_INTENT, TOKEN, FakeDiscord
from tests.adapters.discord.harness import WAIT_S, Running, hearth_on, reply_to, running


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

    assert (await reply_to(hearth.fake, mid, "there?"))[0].text == "echo: Bob: still there?"


async def test_a_bad_token_ends_run_with_a_login_error(tmp_path: Path, registry: Registry) -> None:
    async with (
        FakeDiscord() as fake,
        hearth_on(fake, tmp_path, registry, discord_token="x") as (_, _, adapter),
    ):
        with pytest.raises(discord.LoginFailure):
            await asyncio.wait_for(adapter.run(), WAIT_S)


async def test_a_disallowed_message_content_intent_ends_run_with_a_clear_error(
    tmp_path: Path, registry: Registry
) -> None:
    async with FakeDiscord() as fake, hearth_on(fake, tmp_path, registry) as (_, _, adapter):
        fake.allow_message_content = False
        with pytest.raises(discord.PrivilegedIntentsRequired, match="developer portal"):
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
