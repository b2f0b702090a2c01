"""Messages in, streamed replies out: mentions, replies, threads, DMs, long replies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any

from bot.messages import ConversationKey
from engine.fake import FakeEngine
from engine.registry import Registry
from engine.types import ChatMessage, ReplyChunk, Sampling
from tests.adapters.discord.harness import CHANNEL, WAIT_S, Running, answered, reply_to, running, stored
from tests.adapters.discord.payloads import (
    ADMIN_ID,
    CHANNEL_ID,
    DM_ID,
    OTHER_BOT_ID,
    THREAD_A_ID,
    THREAD_B_ID,
)


async def test_a_mention_gets_a_streamed_reply(hearth: Running) -> None:
    mid = await hearth.fake.user_message("tell me a long story please", mention=True)

    [reply] = await reply_to(hearth.fake, mid, "please")

    assert reply.text == "echo: ⟦Bob⟧: tell me a long story please"
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

    history = await hearth.app.store.history(CHANNEL)

    assert history[0].text == "hello there"


async def test_a_mention_of_the_bots_role_counts_as_a_mention(hearth: Running) -> None:
    mid = await hearth.fake.user_message("hello role", mention_role=True)

    [reply] = await reply_to(hearth.fake, mid, "role")

    assert reply.text == "echo: ⟦Bob⟧: hello role"


async def test_typing_is_shown_while_answering(hearth: Running) -> None:
    mid = await hearth.fake.user_message("hi", mention=True)
    await reply_to(hearth.fake, mid, "hi")

    assert [r.path for r in hearth.fake.calls("typing")][:1] == [f"/api/v10/channels/{CHANNEL_ID}/typing"]


async def test_a_plain_message_in_a_channel_gets_no_reply(hearth: Running) -> None:
    plain = await hearth.fake.user_message("just chatting")
    mid = await hearth.fake.user_message("and you?", mention=True)
    await reply_to(hearth.fake, mid, "you?")

    assert hearth.fake.replies_to(plain) == []
    assert (await hearth.app.store.history(CHANNEL))[0].text == "and you?"


async def test_an_answer_everything_channel_answers_plain_messages(hearth: Running) -> None:
    switched = await hearth.fake.slash("hearth-channel", [{"name": "mode", "type": 3, "value": "on"}],
                                       author=ADMIN_ID)
    assert "every message" in await answered(switched, hearth.fake)

    mid = await hearth.fake.user_message("just chatting")

    [reply] = await reply_to(hearth.fake, mid, "chatting")
    assert reply.text == "echo: ⟦Bob⟧: just chatting"


async def test_answer_everything_can_be_switched_off(hearth: Running) -> None:
    for mode in ("on", "off"):
        switch = await hearth.fake.slash("hearth-channel", [{"name": "mode", "type": 3, "value": mode}],
                                         author=ADMIN_ID)
        await answered(switch, hearth.fake)

    assert await hearth.app.store.get_channel_flag(CHANNEL, "answer_all") is None


async def test_a_reply_to_the_bots_message_addresses_it(hearth: Running) -> None:
    first = await hearth.fake.user_message("hi", mention=True)
    [bot_message] = await reply_to(hearth.fake, first, "hi")

    mid = await hearth.fake.user_message("and then?", reply_to=bot_message)

    [reply] = await reply_to(hearth.fake, mid, "then?")
    assert reply.text == "echo: ⟦Bob⟧: and then?"


async def test_other_bots_are_ignored(hearth: Running) -> None:
    from_bot = await hearth.fake.user_message("hi hearth", author=OTHER_BOT_ID, mention=True)
    mid = await hearth.fake.user_message("hello", mention=True)
    await reply_to(hearth.fake, mid, "hello")

    assert hearth.fake.replies_to(from_bot) == []
    assert (await hearth.app.store.history(CHANNEL))[0].author_id != str(OTHER_BOT_ID)


async def test_a_direct_message_gets_a_reply(hearth: Running) -> None:
    mid = await hearth.fake.user_message("hello in private", channel=DM_ID)

    [reply] = await reply_to(hearth.fake, mid, "private")

    assert reply.channel_id == DM_ID
    assert reply.text == "echo: hello in private"  # a DM is not a group chat: no names
    assert len(await stored(hearth.app, ConversationKey("discord", str(DM_ID)), 2)) == 2


async def test_two_threads_of_one_channel_keep_separate_histories(hearth: Running) -> None:
    a = await hearth.fake.user_message("apples", channel=THREAD_A_ID, mention=True)
    b = await hearth.fake.user_message("pears", channel=THREAD_B_ID, mention=True)
    await reply_to(hearth.fake, a, "apples")
    await reply_to(hearth.fake, b, "pears")

    thread_a = await stored(hearth.app, ConversationKey("discord", str(CHANNEL_ID), str(THREAD_A_ID)), 2)
    thread_b = await stored(hearth.app, ConversationKey("discord", str(CHANNEL_ID), str(THREAD_B_ID)), 2)

    assert [m.text for m in thread_a] == ["apples", "echo: ⟦Bob⟧: apples"]
    assert [m.text for m in thread_b] == ["pears", "echo: ⟦Bob⟧: pears"]
    assert await hearth.app.store.history(CHANNEL) == []


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
