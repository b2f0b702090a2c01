"""HEARTH_ACCESS=allowlist on Discord: the real discord.py client against the fake Discord.
A listed server is answered; another server is not (its messages stored `denied`); a stranger's
direct message gets a pairing code, once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot import i18n
from engine.registry import Registry
from tests.adapters.discord.harness import reply_to, running
from tests.adapters.discord.payloads import CHANNEL_B_ID, DM_ID, GUILD_ID


async def test_a_listed_server_is_answered_and_another_is_not(tmp_path: Path, registry: Registry) -> None:
    listed = {"access": "allowlist", "access_allow": f"discord:server:{GUILD_ID}"}
    async with running(tmp_path, registry, **listed) as env:
        elsewhere = await env.fake.user_message("hello from elsewhere", channel=CHANNEL_B_ID, mention=True)
        here = await env.fake.user_message("hello here", mention=True)
        [answer] = await reply_to(env.fake, here, "hello here")
        await env.fake.wait_for(lambda: env.fake.replies_to(elsewhere))
        await asyncio.sleep(0.2)  # nothing more comes
        refused = env.fake.replies_to(elsewhere)
        count = env.app.metrics.registry.get_sample_value(
            "hearth_messages_refused_total", {"platform": "discord", "reason": "access"})

    assert answer.text == "echo: ⟦Bob⟧: hello here"
    assert [p.text for p in refused] == [i18n.text("access_denied", "en")], "told once why"
    assert count == 1


async def test_a_strangers_direct_message_gets_one_pairing_code(tmp_path: Path, registry: Registry) -> None:
    async with running(tmp_path, registry, access="allowlist", dm_policy="pairing") as env:
        first = await env.fake.user_message("hi", channel=DM_ID)
        second = await env.fake.user_message("hello?", channel=DM_ID)
        [notice] = await env.fake.wait_for(lambda: env.fake.replies_to(first))
        await asyncio.sleep(0.2)

        assert "give them this code" in notice.text
        assert env.fake.replies_to(second) == []
