"""Gateway gaps lose nothing: what was sent while no session was live is read back after the
next new session (READY, not RESUME), answered once and stored once; a failed client is
replaced by a fresh one; a gateway gone for good still ends `run()` in time.

A channel is read back when people talked there lately (`talked`), or when it answers
every message: Hearth does not read every channel it can see."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bot.commands.builtin import ANSWER_ALL
from bot.errors import PlatformDownError
from bot.messages import ConversationKey
from engine.registry import Registry
from tests.adapters.discord.fake_discord import FakeDiscord
from tests.adapters.discord.harness import CHANNEL, WAIT_S, Running, hearth_on, serving
from tests.adapters.discord.payloads import CHANNEL_B_ID, CHANNEL_ID, GUESTS, THREAD_A_ID

GAP_S = 1.0
RECONNECT_S = 20.0  # discord.py retries a refused connection after a random, growing pause
THREAD = ConversationKey("discord", CHANNEL.channel, str(THREAD_A_ID))


def answers(fake: FakeDiscord, message_id: int) -> int:
    return len([p for p in fake.posted.values() if p.reply_to == message_id])


async def answered_once(fake: FakeDiscord, mids: list[int], within: float = RECONNECT_S) -> None:
    """Until each of `mids` has its answer; then none may have two."""
    await fake.wait_for(lambda: all(answers(fake, mid) for mid in mids), within)
    assert [answers(fake, mid) for mid in mids] == [1] * len(mids)


async def talked(fake: FakeDiscord, channel: int = CHANNEL_ID) -> None:
    """Someone talks to the bot in `channel` before the gap, and is answered."""
    await answered_once(fake, [await fake.user_message("hello", channel=channel, mention=True)], WAIT_S)


async def stored_texts(env: Running, key: ConversationKey = CHANNEL) -> list[str]:
    return [m.text for m in await env.app.store.history(key) if m.role == "user"]


async def test_messages_sent_while_reconnects_were_refused_are_read_back_and_answered_once(
    hearth: Running,
) -> None:
    fake = hearth.fake
    await talked(fake)
    fake.refuse_gateway(GAP_S)
    await fake.drop_connection()
    mids = [await fake.user_message(f"in the gap {n}", mention=True, author=GUESTS[n]) for n in range(3)]

    await answered_once(fake, mids)

    assert set(mids) <= set(fake.missed), "the gateway never delivered them"
    assert len(fake.identifies) == 2, "a new session, not a RESUME"
    assert await stored_texts(hearth) == ["hello"] + [f"in the gap {n}" for n in range(3)]


async def test_a_message_sent_during_an_invalid_session_is_answered_once(hearth: Running) -> None:
    await talked(hearth.fake)
    await hearth.fake.invalidate_session()
    mid = await hearth.fake.user_message("are you there?", mention=True)

    await answered_once(hearth.fake, [mid])

    assert mid in hearth.fake.missed
    assert await stored_texts(hearth) == ["hello", "are you there?"]


async def test_a_resumed_session_replays_what_it_missed_and_reads_nothing_back(hearth: Running) -> None:
    await hearth.fake.drop_connection()
    mid = await hearth.fake.user_message("after a blip", mention=True)

    await answered_once(hearth.fake, [mid])

    assert hearth.fake.resumes == 1
    assert hearth.fake.calls("channel_messages") == []


async def test_messages_seen_before_the_gap_are_not_taken_again(hearth: Running) -> None:
    before = await hearth.fake.user_message("before the gap", mention=True)
    await answered_once(hearth.fake, [before])
    await hearth.fake.invalidate_session()
    during = await hearth.fake.user_message("during the gap", mention=True)

    await answered_once(hearth.fake, [during])
    await asyncio.sleep(0.2)  # a second answer to the first would come now

    assert answers(hearth.fake, before) == 1
    assert hearth.fake.calls("channel_messages"), "the channel was read back"
    assert await stored_texts(hearth) == ["before the gap", "during the gap"]


async def test_a_thread_is_read_back_as_its_own_conversation(hearth: Running) -> None:
    hello = await hearth.fake.user_message("hi", channel=THREAD_A_ID, mention=True)
    await answered_once(hearth.fake, [hello])
    await hearth.fake.invalidate_session()
    mid = await hearth.fake.user_message("in the thread", channel=THREAD_A_ID, mention=True)

    await answered_once(hearth.fake, [mid])

    assert await stored_texts(hearth, THREAD) == ["hi", "in the thread"]


async def test_a_channel_that_answers_everything_is_read_back_without_a_mention(hearth: Running) -> None:
    lounge = ConversationKey("discord", str(CHANNEL_B_ID))
    await hearth.app.store.set_channel_flag(lounge, ANSWER_ALL, "1")
    await hearth.fake.invalidate_session()
    mid = await hearth.fake.user_message("anyone?", channel=CHANNEL_B_ID)

    await answered_once(hearth.fake, [mid])

    assert await stored_texts(hearth, lounge) == ["anyone?"]


async def test_messages_older_than_the_window_are_not_read_back(tmp_path: Path, registry: Registry) -> None:
    async with FakeDiscord() as fake, serving(fake, tmp_path, registry, recover_window_s=30.0) as env:
        await talked(fake)
        await fake.invalidate_session()
        old = await fake.user_message("from an hour ago", mention=True, sent_ago=3600)
        recent = await fake.user_message("from just now", mention=True)

        await answered_once(fake, [recent])

        assert answers(fake, old) == 0
        assert await stored_texts(env) == ["hello", "from just now"]


async def test_after_a_restart_what_was_sent_meanwhile_is_read_back_from_the_store(
    tmp_path: Path, registry: Registry
) -> None:
    async with FakeDiscord() as fake:
        async with serving(fake, tmp_path, registry):
            first = await fake.user_message("before the restart", mention=True)
            await answered_once(fake, [first])
        mids = [await fake.user_message(f"while down {n}", mention=True, author=GUESTS[n]) for n in range(2)]

        async with serving(fake, tmp_path, registry) as env:  # the same database: a restart
            await answered_once(fake, [first, *mids])
            assert await stored_texts(env) == ["before the restart", "while down 0", "while down 1"]


async def test_run_starts_afresh_after_the_client_failed(tmp_path: Path, registry: Registry) -> None:
    async with FakeDiscord() as fake, hearth_on(fake, tmp_path, registry) as (_, _, adapter):
        first = asyncio.create_task(adapter.run())
        await asyncio.wait_for(adapter.wait_until_ready(), WAIT_S)
        await talked(fake)
        await fake.send_garbage()
        with pytest.raises(ValueError):  # what discord.py raises for a frame that is not JSON
            await asyncio.wait_for(first, WAIT_S)
        mid = await fake.user_message("while it was down", mention=True)

        second = asyncio.create_task(adapter.run())  # as the runner's supervisor does
        try:
            await answered_once(fake, [mid], WAIT_S)
        finally:
            await adapter.stop()
            await asyncio.wait_for(second, WAIT_S)

    assert len(fake.identifies) == 2
    assert fake.unexpected == []


async def test_a_gateway_gone_for_good_ends_run_within_a_second_of_down_s(
    tmp_path: Path, registry: Registry
) -> None:
    down_s = 1.0
    async with FakeDiscord() as fake, hearth_on(fake, tmp_path, registry, platform_down_s=down_s) as (
        _, _, adapter,
    ):
        task = asyncio.create_task(adapter.run())
        await asyncio.wait_for(adapter.wait_until_ready(), WAIT_S)
        fake.gateway_down = True
        started = time.monotonic()
        await fake.drop_connection()

        with pytest.raises(PlatformDownError):
            await asyncio.wait_for(task, WAIT_S)

    assert down_s <= time.monotonic() - started < down_s + 1.0
