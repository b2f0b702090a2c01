"""Gateway shards: one process running several, processes splitting them, and their settings."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from bot.app.platforms import discord_config
from bot.errors import ConfigError, PlatformDownError
from bot.messages import ConversationKey
from engine.registry import Registry
from tests.adapters.discord.fake_discord import FakeDiscord
from tests.adapters.discord.harness import WAIT_S, answered, hearth_on, reply_to, serving
from tests.adapters.discord.payloads import CHANNEL_B_ID, CHANNEL_ID, DM_ID, GUILD_B_ID, GUILD_ID, shard_of
from tests.conftest import make_settings

TWO_SHARDS = {"discord_shard_count": 2}
DM = ConversationKey("discord", str(DM_ID))
LOUNGE = ConversationKey("discord", str(CHANNEL_B_ID))  # GUILD_B_ID's channel
GENERAL = ConversationKey("discord", str(CHANNEL_ID))  # GUILD_ID's channel


def identified(fake: FakeDiscord) -> list[list[int]]:
    """The `[shard_id, count]` of every IDENTIFY, by shard."""
    return sorted(data["shard"] for data in fake.identifies)


async def answered_in(fake: FakeDiscord, channel: int, text: str) -> str:
    """A message mentioning the bot in `channel`; the bot's reply."""
    mid = await fake.user_message(text, channel=channel, mention=channel != DM_ID)
    return (await reply_to(fake, mid, text))[0].text


def test_the_fake_guilds_sit_on_different_shards() -> None:
    assert (shard_of(GUILD_B_ID, 2), shard_of(GUILD_ID, 2)) == (0, 1)


async def test_two_shards_in_one_process_answer_both_servers_and_dms(
    tmp_path: Path, registry: Registry
) -> None:
    async with FakeDiscord() as fake, serving(fake, tmp_path, registry, **TWO_SHARDS):
        assert identified(fake) == [[0, 2], [1, 2]]

        assert await answered_in(fake, CHANNEL_B_ID, "on shard zero") == "echo: ⟦Bob⟧: on shard zero"
        assert await answered_in(fake, CHANNEL_ID, "on shard one") == "echo: ⟦Bob⟧: on shard one"
        assert await answered_in(fake, DM_ID, "in a DM") == "echo: in a DM"  # a DM's history names no one

        assert fake.undelivered == []
        assert fake.unexpected == []


async def test_without_a_count_the_process_runs_as_many_shards_as_discord_recommends(
    tmp_path: Path, registry: Registry
) -> None:
    async with FakeDiscord() as fake:
        fake.recommended_shards = 2
        async with serving(fake, tmp_path, registry):
            assert len(fake.calls("gateway_bot")) == 1
            assert identified(fake) == [[0, 2], [1, 2]]
            assert await answered_in(fake, CHANNEL_ID, "hello") == "echo: ⟦Bob⟧: hello"


async def test_a_process_running_only_shard_1_never_gets_shard_0s_servers_nor_dms(
    tmp_path: Path, registry: Registry
) -> None:
    async with (
        FakeDiscord() as fake,
        serving(fake, tmp_path, registry, discord_shard_ids="1", **TWO_SHARDS) as env,
    ):
        assert identified(fake) == [[1, 2]]
        assert fake.shards == {1}

        await fake.user_message("for shard zero", channel=CHANNEL_B_ID, mention=True)
        await fake.user_message("a DM", channel=DM_ID)
        assert await answered_in(fake, CHANNEL_ID, "for shard one") == "echo: ⟦Bob⟧: for shard one"

        assert fake.undelivered == [(0, "MESSAGE_CREATE"), (0, "MESSAGE_CREATE")]
        assert len(fake.posted) == 1
        assert await env.app.store.history(LOUNGE) == []
        assert await env.app.store.history(DM) == []
        assert fake.calls("sync_commands") == []  # the process running shard 0 publishes them


async def test_two_processes_split_the_shards_and_each_answers_its_own(
    tmp_path: Path, registry: Registry
) -> None:
    async with (
        FakeDiscord() as fake,
        serving(fake, tmp_path / "a", registry, discord_shard_ids="0", **TWO_SHARDS) as first,
        serving(fake, tmp_path / "b", registry, discord_shard_ids="1", **TWO_SHARDS) as second,
    ):
        assert identified(fake) == [[0, 2], [1, 2]]

        await answered_in(fake, CHANNEL_B_ID, "lounge")
        await answered_in(fake, DM_ID, "dm")
        await answered_in(fake, CHANNEL_ID, "general")
        status = await answered(await fake.slash("status", channel=CHANNEL_ID), fake)

        assert [len(await first.app.store.history(key)) for key in (LOUNGE, DM, GENERAL)] == [2, 2, 0]
        assert [len(await second.app.store.history(key)) for key in (LOUNGE, DM, GENERAL)] == [0, 0, 2]
        assert "demo" in status  # shard 1's process answers slash commands it did not publish
        assert len(fake.calls("sync_commands")) == 1
        assert fake.undelivered == []
        assert fake.unexpected == []


async def test_one_shard_down_too_long_ends_run_while_the_others_are_up(
    tmp_path: Path, registry: Registry
) -> None:
    async with (
        FakeDiscord() as fake,
        hearth_on(fake, tmp_path, registry, platform_down_s=1.0, **TWO_SHARDS) as (_, _, adapter),
    ):
        task = asyncio.create_task(adapter.run())
        await asyncio.wait_for(adapter.wait_until_ready(), WAIT_S)

        fake.gateway_down = True
        await fake.drop_connection(shard=1)

        with pytest.raises(PlatformDownError, match="shard 1"):
            await asyncio.wait_for(task, WAIT_S)


async def test_a_gateway_unreachable_at_start_up_ends_run(tmp_path: Path, registry: Registry) -> None:
    async with (
        FakeDiscord() as fake,
        hearth_on(fake, tmp_path, registry, platform_down_s=1.0) as (_, _, adapter),
    ):
        fake.gateway_down = True

        with pytest.raises(PlatformDownError, match="shard 0"):
            await asyncio.wait_for(adapter.run(), WAIT_S)


async def test_too_few_shards_for_discord_ends_run_with_a_settings_error(
    tmp_path: Path, registry: Registry
) -> None:
    async with (
        FakeDiscord() as fake,
        hearth_on(fake, tmp_path, registry, discord_shard_count=1) as (_, _, adapter),
    ):
        fake.required_shards = 2

        with pytest.raises(ConfigError, match="HEARTH_DISCORD_SHARD_COUNT"):
            await asyncio.wait_for(adapter.run(), WAIT_S)


def test_the_shard_settings_reach_the_adapter(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, discord_token="t", discord_shard_count=4, discord_shard_ids=" 3, 1")

    config = discord_config(settings)

    assert (config.shard_count, config.shard_ids, config.publishes_commands) == (4, (1, 3), False)


def test_unset_shard_settings_mean_every_shard_of_discords_recommendation(tmp_path: Path) -> None:
    config = discord_config(make_settings(tmp_path, discord_token="t"))

    assert (config.shard_count, config.shard_ids, config.publishes_commands) == (None, None, True)


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"discord_shard_ids": "0"}, "HEARTH_DISCORD_SHARD_IDS: .*needs HEARTH_DISCORD_SHARD_COUNT"),
        ({"discord_shard_count": 2, "discord_shard_ids": "2"}, "HEARTH_DISCORD_SHARD_IDS: .*from 0 to 1"),
        ({"discord_shard_count": 2, "discord_shard_ids": "-1"}, "HEARTH_DISCORD_SHARD_IDS: .*from 0 to 1"),
        ({"discord_shard_count": 2, "discord_shard_ids": "1,1"}, "HEARTH_DISCORD_SHARD_IDS: .*twice"),
        ({"discord_shard_count": 2, "discord_shard_ids": "one"}, "HEARTH_DISCORD_SHARD_IDS: .*integer"),
        ({"discord_shard_count": 0}, "HEARTH_DISCORD_SHARD_COUNT: .*greater than or equal to 1"),
    ],
)
def test_bad_shard_settings_are_one_clear_line(
    tmp_path: Path, settings: dict[str, object], problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(tmp_path, **settings)

    [line] = caught.value.problems
    assert re.match(problem, line), line
