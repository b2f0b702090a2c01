"""The Discord adapter end to end: the real discord.py client against a fake Discord on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
import pytest

from adapters.discord import DeliveryError, DiscordAdapter
from bot import i18n
from bot.core import Hearth
from bot.messages import ChatMessage, ConversationKey, StoredMessage
from bot.registry import Registry
from bot.store import SqliteStore
from engine.base import ReplyChunk, Sampling
from engine.fake import FakeEngine
from tests.adapters.fake_discord import (
    ADMIN_ID,
    CHANNEL_ID,
    DM_ID,
    EPHEMERAL,
    MEMBER_ID,
    MESSAGE_CONTENT_INTENT,
    OTHER_BOT_ID,
    THREAD_A_ID,
    THREAD_B_ID,
    TOKEN,
    FakeDiscord,
    Interaction,
    Posted,
)
from tests.conftest import TODAY, make_settings

WAIT_S = 5.0
CHANNEL = ConversationKey("discord", str(CHANNEL_ID))


@dataclass
class Running:
    fake: FakeDiscord
    adapter: DiscordAdapter
    core: Hearth


@asynccontextmanager
async def hearth_on(
    fake: FakeDiscord, tmp_path: Path, registry: Registry, engine: FakeEngine | None = None, **settings: Any
) -> AsyncIterator[tuple[Hearth, DiscordAdapter]]:
    """A Hearth core (fake engine, SQLite in tmp) and its Discord adapter, pointed at `fake`."""
    async with SqliteStore(tmp_path / "hearth.sqlite3") as store:
        config = make_settings(tmp_path, discord_api_base=fake.api_base, discord_gateway_url=fake.gateway_url,
                               **{"discord_token": TOKEN, **settings})
        engine = engine or FakeEngine(registry.get("demo"), delay=0.02)
        await engine.start()
        core = Hearth(config, store, engine, registry, today=lambda: TODAY)
        adapter = DiscordAdapter(core, config, edit_interval=0.05, guild_ready_timeout=0.05, retry_delay=0.05)
        yield core, adapter


@asynccontextmanager
async def running(
    tmp_path: Path, registry: Registry, engine: FakeEngine | None = None, **settings: Any
) -> AsyncIterator[Running]:
    """Hearth serving Discord, connected to a fresh fake Discord; stopped afterwards."""
    async with (
        FakeDiscord() as fake,
        hearth_on(fake, tmp_path, registry, engine, **settings) as (core, adapter),
    ):
        task = asyncio.create_task(adapter.run())
        try:
            await _until_ready(adapter, task)
            yield Running(fake, adapter, core)
        finally:
            await adapter.stop()
            await asyncio.wait_for(task, WAIT_S)
        assert fake.unexpected == []


async def _until_ready(adapter: DiscordAdapter, task: asyncio.Task[None]) -> None:
    ready = asyncio.create_task(adapter.wait_until_ready())
    await asyncio.wait([ready, task], timeout=WAIT_S, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # raises why run() ended
    assert ready.done(), "the client never became ready"


@pytest.fixture
async def hearth(tmp_path: Path, registry: Registry) -> AsyncIterator[Running]:
    async with running(tmp_path, registry) as env:
        yield env


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


async def stored(core: Hearth, key: ConversationKey, count: int) -> list[StoredMessage]:
    """The history of `key` once it holds `count` messages (a reply is stored after it shows)."""
    async with asyncio.timeout(WAIT_S):
        # The store has no change notification: a bounded poll.
        while len(history := await core.store.history(key)) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    return history


# --- conversations ---------------------------------------------------------------------


async def test_a_mention_gets_a_streamed_reply(hearth: Running) -> None:
    mid = await hearth.fake.user_message("tell me a long story please", mention=True)

    [reply] = await reply_to(hearth.fake, mid, "please")

    assert reply.text == "echo: Bob: tell me a long story please"
    writes = [r.route for r in hearth.fake.requests if r.route in ("create_message", "edit_message")]
    assert writes[0] == "create_message"
    assert writes.count("edit_message") >= 1
    assert len(reply.contents) >= 2


async def test_the_reply_quotes_the_message_and_pings_nobody(hearth: Running) -> None:
    mid = await hearth.fake.user_message("hi", mention=True)

    [reply] = await reply_to(hearth.fake, mid, "hi")

    assert reply.reply_to == mid
    assert reply.allowed_mentions["parse"] == []
    assert not reply.allowed_mentions.get("replied_user")  # Discord's default: false


async def test_the_mention_is_stripped_from_the_text(hearth: Running) -> None:
    mid = await hearth.fake.user_message("hello there", mention=True)
    await reply_to(hearth.fake, mid, "there")

    history = await hearth.core.store.history(CHANNEL)

    assert history[0].text == "hello there"


async def test_a_mention_of_the_bots_role_counts_as_a_mention(hearth: Running) -> None:
    mid = await hearth.fake.user_message("hello role", mention_role=True)

    [reply] = await reply_to(hearth.fake, mid, "role")

    assert reply.text == "echo: Bob: hello role"


async def test_typing_is_shown_while_answering(hearth: Running) -> None:
    mid = await hearth.fake.user_message("hi", mention=True)
    await reply_to(hearth.fake, mid, "hi")

    assert [r.path for r in hearth.fake.calls("typing")][:1] == [f"/api/v10/channels/{CHANNEL_ID}/typing"]


async def test_a_plain_message_in_a_channel_gets_no_reply(hearth: Running) -> None:
    plain = await hearth.fake.user_message("just chatting")
    mid = await hearth.fake.user_message("and you?", mention=True)
    await reply_to(hearth.fake, mid, "you?")

    assert hearth.fake.replies_to(plain) == []
    assert (await hearth.core.store.history(CHANNEL))[0].text == "and you?"


async def test_an_answer_everything_channel_answers_plain_messages(hearth: Running) -> None:
    switched = await hearth.fake.slash("hearth-channel", [{"name": "mode", "type": 3, "value": "on"}],
                                       author=ADMIN_ID)
    assert "every message" in await answered(switched, hearth.fake)

    mid = await hearth.fake.user_message("just chatting")

    [reply] = await reply_to(hearth.fake, mid, "chatting")
    assert reply.text == "echo: Bob: just chatting"


async def test_answer_everything_can_be_switched_off(hearth: Running) -> None:
    for mode in ("on", "off"):
        switch = await hearth.fake.slash("hearth-channel", [{"name": "mode", "type": 3, "value": mode}],
                                         author=ADMIN_ID)
        await answered(switch, hearth.fake)

    assert await hearth.core.store.get_channel_flag(CHANNEL, "answer_all") is None


async def test_a_reply_to_the_bots_message_addresses_it(hearth: Running) -> None:
    first = await hearth.fake.user_message("hi", mention=True)
    [bot_message] = await reply_to(hearth.fake, first, "hi")

    mid = await hearth.fake.user_message("and then?", reply_to=bot_message)

    [reply] = await reply_to(hearth.fake, mid, "then?")
    assert reply.text == "echo: Bob: and then?"


async def test_other_bots_are_ignored(hearth: Running) -> None:
    from_bot = await hearth.fake.user_message("hi hearth", author=OTHER_BOT_ID, mention=True)
    mid = await hearth.fake.user_message("hello", mention=True)
    await reply_to(hearth.fake, mid, "hello")

    assert hearth.fake.replies_to(from_bot) == []
    assert (await hearth.core.store.history(CHANNEL))[0].author_id != str(OTHER_BOT_ID)


async def test_a_direct_message_gets_a_reply(hearth: Running) -> None:
    mid = await hearth.fake.user_message("hello in private", channel=DM_ID)

    [reply] = await reply_to(hearth.fake, mid, "private")

    assert reply.channel_id == DM_ID
    assert reply.text == "echo: hello in private"  # a DM is not a group chat: no names
    assert len(await stored(hearth.core, ConversationKey("discord", str(DM_ID)), 2)) == 2


async def test_two_threads_of_one_channel_keep_separate_histories(hearth: Running) -> None:
    a = await hearth.fake.user_message("apples", channel=THREAD_A_ID, mention=True)
    b = await hearth.fake.user_message("pears", channel=THREAD_B_ID, mention=True)
    await reply_to(hearth.fake, a, "apples")
    await reply_to(hearth.fake, b, "pears")

    thread_a = await stored(hearth.core, ConversationKey("discord", str(CHANNEL_ID), str(THREAD_A_ID)), 2)
    thread_b = await stored(hearth.core, ConversationKey("discord", str(CHANNEL_ID), str(THREAD_B_ID)), 2)

    assert [m.text for m in thread_a] == ["apples", "echo: Bob: apples"]
    assert [m.text for m in thread_b] == ["pears", "echo: Bob: pears"]
    assert await hearth.core.store.history(CHANNEL) == []


class GatedEngine(FakeEngine):
    """Holds every reply at its start until `gate` opens; `all_waiting(n)` once n replies wait."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = asyncio.Event()
        self._waiting = 0
        self._arrived = asyncio.Condition()

    async def all_waiting(self, count: int) -> None:
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: self._waiting >= count), WAIT_S)

    async def stream(self, messages: Sequence[ChatMessage], sampling: Sampling) -> AsyncGenerator[ReplyChunk]:
        async with self._arrived:
            self._waiting += 1
            self._arrived.notify_all()
        await self.gate.wait()
        async for chunk in super().stream(messages, sampling):
            yield chunk


async def test_conversations_are_answered_concurrently(tmp_path: Path, registry: Registry) -> None:
    engine = GatedEngine(registry.get("demo"))
    async with running(tmp_path, registry, engine) as env:
        a = await env.fake.user_message("apples", channel=THREAD_A_ID, mention=True)
        b = await env.fake.user_message("pears", channel=THREAD_B_ID, mention=True)

        await engine.all_waiting(2)  # both conversations in flight at once
        engine.gate.set()

        assert (await reply_to(env.fake, a, "apples"))[0].channel_id == THREAD_A_ID
        assert (await reply_to(env.fake, b, "pears"))[0].channel_id == THREAD_B_ID


# --- long replies ------------------------------------------------------------------------

CODE_LINES = [f"print('line {i:03d} of a long listing')\n" for i in range(160)]


def long_code(messages: Sequence[ChatMessage]) -> list[str]:
    return ["Here is the code:\n\n```python\n", *CODE_LINES, "```\n\nDone."]


async def test_a_long_reply_is_split_with_code_fences_intact(tmp_path: Path, registry: Registry) -> None:
    async with running(tmp_path, registry, FakeEngine(registry.get("demo"), long_code)) as env:
        mid = await env.fake.user_message("show me code", mention=True)

        parts = await reply_to(env.fake, mid, "Done.")

    assert len(parts) >= 3
    assert all(len(p.text) <= 2000 for p in parts)
    assert all(p.text.count("```") % 2 == 0 for p in parts)
    assert all(p.text.startswith("```python\n") for p in parts[1:-1])
    shown = "".join(p.text for p in parts)
    assert all(line in shown for line in CODE_LINES)
    assert [r.status for r in env.fake.requests if r.status >= 400] == []


async def test_the_fake_rejects_content_over_2000_characters(hearth: Running) -> None:
    with pytest.raises(DeliveryError) as caught:
        await hearth.adapter.send(CHANNEL, "x" * 2001)

    assert (caught.value.status, caught.value.code) == (400, 50035)


# --- slash commands ------------------------------------------------------------------------

MODEL_DEMO_AWQ = [{"name": "name", "type": 3, "value": "demo-awq"}]


async def test_commands_are_synced_at_start_up(hearth: Running) -> None:
    names = {c["name"] for c in hearth.fake.commands}

    assert names == {"model", "persona", "reset", "status", "hearth-channel"}


async def test_an_admin_switches_the_model_and_status_shows_it(hearth: Running) -> None:
    switch = await hearth.fake.slash("model", MODEL_DEMO_AWQ, author=ADMIN_ID)
    assert "Now serving demo-awq" in await answered(switch, hearth.fake)
    assert switch.callbacks[0]["type"] == 5  # deferred: loading a model takes longer than 3 s

    status = await hearth.fake.slash("status", author=ADMIN_ID)

    assert "model: demo-awq" in await answered(status, hearth.fake)
    assert hearth.core.engine.spec.name == "demo-awq"


async def test_a_non_admin_gets_an_ephemeral_refusal_and_no_switch(hearth: Running) -> None:
    switch = await hearth.fake.slash("model", MODEL_DEMO_AWQ)

    refusal = await answered(switch, hearth.fake)

    assert "only admins" in refusal
    assert switch.callbacks[0]["type"] == 4
    assert switch.callbacks[0]["data"]["flags"] & EPHEMERAL
    assert hearth.core.engine.spec.name == "demo"


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


async def test_non_admins_cannot_mark_a_channel(hearth: Running) -> None:
    switch = await hearth.fake.slash("hearth-channel", [{"name": "mode", "type": 3, "value": "on"}])

    await answered(switch, hearth.fake)

    assert switch.callbacks[0]["data"]["flags"] & EPHEMERAL
    assert await hearth.core.store.get_channel_flag(CHANNEL, "answer_all") is None


async def test_an_admin_sets_the_channel_persona(hearth: Running) -> None:
    options = [{"name": "set", "type": 1, "options": [{"name": "text", "type": 3, "value": "Be terse."}]}]
    command = await hearth.fake.slash("persona", options, author=ADMIN_ID)

    assert "Persona set" in await answered(command, hearth.fake)
    assert await hearth.core.store.get_channel_persona(CHANNEL) == "Be terse."


async def test_anyone_may_reset_a_direct_conversation(hearth: Running) -> None:
    await hearth.fake.user_message("remember me", channel=DM_ID)
    await stored(hearth.core, ConversationKey("discord", str(DM_ID)), 2)

    command = await hearth.fake.slash("reset", channel=DM_ID)

    assert "forgotten (2 messages)" in await answered(command, hearth.fake)


# --- failures ------------------------------------------------------------------------------


async def test_a_rate_limited_send_is_waited_out_and_arrives_once(hearth: Running) -> None:
    hearth.fake.rate_limit_next("create_message", retry_after=0.3)
    mid = await hearth.fake.user_message("hi", mention=True)

    [reply] = await reply_to(hearth.fake, mid, "hi")

    assert reply.text == "echo: Bob: hi"
    assert [r.status for r in hearth.fake.calls("create_message")] == [429, 200]


async def test_a_503_is_retried_by_the_adapter(hearth: Running) -> None:
    hearth.fake.fail_next("create_message", 503, message="Service Unavailable", code=0)
    mid = await hearth.fake.user_message("hi", mention=True)

    [reply] = await reply_to(hearth.fake, mid, "hi")

    assert reply.text == "echo: Bob: hi"
    assert [r.status for r in hearth.fake.calls("create_message")] == [503, 200]


async def test_a_500_is_retried_by_discord_py(hearth: Running) -> None:
    hearth.fake.fail_next("create_message", 500, message="Internal Server Error", code=0)
    mid = await hearth.fake.user_message("hi", mention=True)

    [reply] = await reply_to(hearth.fake, mid, "hi")

    assert reply.text == "echo: Bob: hi"
    assert [r.status for r in hearth.fake.calls("create_message")] == [500, 200]


async def test_a_rejected_send_gives_a_short_error_and_a_logged_reason(
    hearth: Running, caplog: pytest.LogCaptureFixture
) -> None:
    hearth.fake.fail_next("create_message", 403, message="Missing Permissions", code=50013)
    mid = await hearth.fake.user_message("hi", mention=True)

    [reply] = await reply_to(hearth.fake, mid, ".")

    assert reply.text == i18n.text("internal_error", "en")
    assert any("50013" in r.getMessage() and "Missing Permissions" in r.getMessage() for r in caplog.records)


# --- the connection --------------------------------------------------------------------------


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
    async with FakeDiscord() as fake, hearth_on(fake, tmp_path, registry, discord_token="x") as (_, adapter):
        with pytest.raises(discord.LoginFailure):
            await asyncio.wait_for(adapter.run(), WAIT_S)


async def test_a_disallowed_message_content_intent_ends_run_with_a_clear_error(
    tmp_path: Path, registry: Registry
) -> None:
    async with FakeDiscord() as fake, hearth_on(fake, tmp_path, registry) as (_, adapter):
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
