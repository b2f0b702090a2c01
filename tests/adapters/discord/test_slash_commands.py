"""Slash commands run through the table: who may run what, and what they answer."""

from __future__ import annotations

from pathlib import Path

from bot import i18n
from bot.messages import ConversationKey, WordRule
from engine.registry import ModelSpec, Registry
from tests.adapters.discord.harness import CHANNEL, Running, answered, reply_to, running, stored
from tests.adapters.discord.payloads import ADMIN_ID, CHANNEL_ID, DM_ID, EPHEMERAL, MEMBER_ID, Json

MODEL_DEMO_AWQ = [{"name": "name", "type": 3, "value": "demo-awq"}]


async def test_a_server_admins_global_model_is_refused_and_nothing_changes(hearth: Running) -> None:
    switch = await hearth.fake.slash("model", MODEL_DEMO_AWQ, author=ADMIN_ID)
    assert "only Hearth's operators" in await answered(switch, hearth.fake)
    assert switch.callbacks[0]["data"]["flags"] & EPHEMERAL

    status = await hearth.fake.slash("status", author=ADMIN_ID)

    shown = await answered(status, hearth.fake)
    assert "model: demo" in shown and "engine: 0 restarts" in shown, "engine details for admins"
    assert hearth.engine.spec.name == "demo"


async def test_an_operator_switches_the_model_and_status_shows_it(tmp_path: Path, registry: Registry) -> None:
    async with running(tmp_path, registry, admin_ids=f"discord:{MEMBER_ID}") as env:
        switch = await env.fake.slash("model", MODEL_DEMO_AWQ)
        assert "Now serving demo-awq" in await answered(switch, env.fake)
        assert switch.callbacks[0]["type"] == 5  # deferred: loading a model takes longer than 3 s

        status = await env.fake.slash("status")

        assert "model: demo-awq" in await answered(status, env.fake)
        assert env.engine.spec.name == "demo-awq"


async def test_a_non_admin_gets_an_ephemeral_refusal_and_no_switch(hearth: Running) -> None:
    switch = await hearth.fake.slash("model", MODEL_DEMO_AWQ)

    refusal = await answered(switch, hearth.fake)

    assert "only Hearth's operators" in refusal
    assert switch.callbacks[0]["type"] == 4
    assert switch.callbacks[0]["data"]["flags"] & EPHEMERAL
    assert hearth.engine.spec.name == "demo"


async def test_a_listed_admin_id_may_switch_without_manage_server(tmp_path: Path, registry: Registry) -> None:
    async with running(tmp_path, registry, admin_ids=f"discord:{MEMBER_ID}") as env:
        switch = await env.fake.slash("model", MODEL_DEMO_AWQ)

        assert "Now serving demo-awq" in await answered(switch, env.fake)


async def test_model_names_autocomplete_from_the_registry(hearth: Running) -> None:
    typing = [{"name": "name", "type": 3, "value": "awq", "focused": True}]
    interaction = await hearth.fake.slash("model", typing, autocomplete=True)

    await hearth.fake.wait_for(lambda: interaction.callbacks)

    callback = interaction.callbacks[0]
    assert callback["type"] == 8
    names = [c["value"] for c in callback["data"]["choices"]]
    assert "demo-awq" in names
    assert all("awq" in n for n in names)


async def test_autocomplete_offers_at_most_25_choices(tmp_path: Path, registry: Registry) -> None:
    many = Registry([*registry, *(ModelSpec(f"extra-{i:02d}", "org/extra") for i in range(30))])
    typing = [{"name": "name", "type": 3, "value": "", "focused": True}]
    async with running(tmp_path, many) as env:
        interaction = await env.fake.slash("model", typing, autocomplete=True)

        await env.fake.wait_for(lambda: interaction.callbacks)

    assert len(interaction.callbacks[0]["data"]["choices"]) == 25


async def test_non_admins_cannot_mark_a_channel(hearth: Running) -> None:
    switch = await hearth.fake.slash("hearth-channel", [{"name": "mode", "type": 3, "value": "on"}])

    await answered(switch, hearth.fake)

    assert switch.callbacks[0]["data"]["flags"] & EPHEMERAL
    assert await hearth.app.store.get_channel_flag(CHANNEL, "answer_all") is None


async def test_an_admin_sets_the_channel_persona(hearth: Running) -> None:
    options = [{"name": "set", "type": 1, "options": [{"name": "text", "type": 3, "value": "Be terse."}]}]
    command = await hearth.fake.slash("persona", options, author=ADMIN_ID)

    assert "Persona set" in await answered(command, hearth.fake)
    assert await hearth.app.store.get_channel_persona(CHANNEL) == "Be terse."


def subcommand(name: str, **values: str) -> list[Json]:
    """The options Discord sends for `/command name option:value …`."""
    return [{"name": name, "type": 1,
             "options": [{"name": k, "type": 3, "value": v} for k, v in values.items()]}]


BLOCK_PINEAPPLE = subcommand("block", word="pineapple")
HERE = f"discord:{CHANNEL_ID}"  # the scope of this channel's words


async def test_an_admin_blocks_a_word_and_a_later_message_with_it_is_refused(hearth: Running) -> None:
    command = await hearth.fake.slash("moderation", BLOCK_PINEAPPLE, author=ADMIN_ID)

    assert "Blocking 'pineapple'" in await answered(command, hearth.fake)
    assert await hearth.app.store.words() == [WordRule(HERE, "pineapple", "block", "harassment")]

    mid = await hearth.fake.user_message("I love pineapple", mention=True)

    [reply] = await reply_to(hearth.fake, mid, ".")
    assert reply.text == i18n.text("refusal", "en")


async def test_a_member_may_not_block_a_word(hearth: Running) -> None:
    command = await hearth.fake.slash("moderation", BLOCK_PINEAPPLE)

    assert "only admins" in await answered(command, hearth.fake)
    assert command.callbacks[0]["type"] == 4
    assert command.callbacks[0]["data"]["flags"] & EPHEMERAL
    assert await hearth.app.store.words() == []


async def test_a_global_block_is_for_operators_not_server_admins(hearth: Running) -> None:
    options = subcommand("block", word="durian", scope="global")
    command = await hearth.fake.slash("moderation", options, author=ADMIN_ID)

    assert "only Hearth's operators" in await answered(command, hearth.fake)
    assert await hearth.app.store.words() == []


async def test_an_operator_blocks_a_word_everywhere(tmp_path: Path, registry: Registry) -> None:
    options = subcommand("block", word="durian", category="violence", scope="global")
    async with running(tmp_path, registry, admin_ids=f"discord:{MEMBER_ID}") as env:
        command = await env.fake.slash("moderation", options)

        assert "every chat" in await answered(command, env.fake)
        assert await env.app.store.words() == [WordRule("global", "durian", "block", "violence")]


async def test_anyone_may_reset_a_direct_conversation(hearth: Running) -> None:
    await hearth.fake.user_message("remember me", channel=DM_ID)
    await stored(hearth.app, ConversationKey("discord", str(DM_ID)), 2)

    command = await hearth.fake.slash("reset", channel=DM_ID)

    assert "forgotten (2 messages)" in await answered(command, hearth.fake)
