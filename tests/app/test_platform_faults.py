"""A platform's faults, at the level where they happen: the real `hearth run` against the fake
Discord gateway and REST API and the fake Telegram Bot API. A gateway gap, an invalid
session and a kill -9 lose no message; one platform's crash leaves the other serving;
an update nobody can read is skipped; Telegram down past HEARTH_PLATFORM_DOWN_S ends the
process in time. Counts what was delivered, stored and answered.

Hearth runs on the remote engine kind against a fake OpenAI-compatible server
(tests/engine/fake_openai.py): the engine is not what is tested, and it starts in seconds.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.adapters.discord.fake_discord import FakeDiscord
from tests.adapters.discord.payloads import GUESTS, TOKEN
from tests.adapters.telegram.fake_telegram import Chat, FakeTelegram, User, running
from tests.app.process import HearthProcess, hearth_env, rows, until
from tests.engine.fake_openai import FakeOpenAI

WORDS = (" the", " answer")
FULL = "the answer"
ANSWER_WITHIN_S = 40.0  # discord.py waits a random, growing pause between refused reconnects
START_WITHIN_S = 60.0
ALICE = User(501, "Alice", "alice")
ALICE_DM = Chat(ALICE.id, "private")


@pytest.fixture
async def model() -> AsyncIterator[FakeOpenAI]:
    server = await FakeOpenAI(words=WORDS).start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def discord() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with running() as fake:
        yield fake


def hearth(
    model: FakeOpenAI, tmp_path: Path, *, discord: FakeDiscord | None = None,
    telegram: FakeTelegram | None = None, **settings: str,
) -> HearthProcess:
    """`hearth run` on the fake model, serving the fakes given."""
    if discord is not None:
        settings |= {"discord_token": TOKEN, "discord_api_base": discord.api_base,
                     "discord_gateway_url": discord.gateway_url}
    if telegram is not None:
        settings |= {"telegram_token": telegram.token, "telegram_base_url": telegram.base_url}
    env = hearth_env(tmp_path / "data", db(tmp_path), engine_kind="remote", engine_urls=model.url, **settings)
    return HearthProcess(tmp_path, env)


def db(tmp_path: Path) -> Path:
    return tmp_path / "hearth.sqlite3"


async def on_discord(process: HearthProcess, discord: FakeDiscord) -> HearthProcess:
    """Started, and answering in the channel (so the channel counts as active)."""
    identified = len(discord.identifies)
    await process.start()
    await until(lambda: len(discord.identifies) > identified and bool(discord.shards), START_WITHIN_S)
    await answered(discord, [await discord.user_message("hello", mention=True)], 20)
    return process


def answers(discord: FakeDiscord, message_id: int) -> list[str]:
    """What each bot message answering `message_id` shows now."""
    return [p.text for p in discord.posted.values() if p.reply_to == message_id]


async def answered(discord: FakeDiscord, mids: list[int], within: float = ANSWER_WITHIN_S) -> None:
    await until(lambda: all(FULL in answers(discord, mid) for mid in mids), within)


async def ask(discord: FakeDiscord, count: int, tag: str) -> list[int]:
    """`count` mentions, each from another person (one person's waiting messages are answered together)."""
    return [await discord.user_message(f"{tag} {n}", mention=True, author=GUESTS[n]) for n in range(count)]


def stored(tmp_path: Path, mids: list[int]) -> list[int]:
    """How many times each message was stored."""
    query = "SELECT platform_message_id FROM messages WHERE role = 'user'"
    found = [str(r[0]) for r in rows(db(tmp_path), query)]
    return [found.count(str(mid)) for mid in mids]


async def settle() -> None:
    """A second answer would come now."""
    await asyncio.sleep(1.0)


async def test_messages_sent_while_the_gateway_refused_reconnects_are_answered_once(
    model: FakeOpenAI, discord: FakeDiscord, tmp_path: Path
) -> None:
    process = await on_discord(hearth(model, tmp_path, discord=discord), discord)
    try:
        discord.refuse_gateway(3.0)
        await discord.drop_connection()
        sent = []
        for n in range(7):  # spread over the gap
            sent += [await discord.user_message(f"in the gap {n}", mention=True, author=GUESTS[n])]
            await asyncio.sleep(0.3)
        await answered(discord, sent)
        await settle()
    finally:
        await process.terminate()
        process.ensure_gone()

    assert set(sent) <= set(discord.missed), "the gateway delivered them after all: no gap was tested"
    assert [answers(discord, mid).count(FULL) for mid in sent] == [1] * 7
    assert stored(tmp_path, sent) == [1] * 7
    assert "failed unexpectedly" not in process.tail(400)  # discord.py's own reconnect tracebacks aside


async def test_a_message_sent_during_an_invalid_session_is_answered_once(
    model: FakeOpenAI, discord: FakeDiscord, tmp_path: Path
) -> None:
    process = await on_discord(hearth(model, tmp_path, discord=discord), discord)
    try:
        await discord.invalidate_session()
        [mid] = await ask(discord, 1, "during the invalid session")
        await answered(discord, [mid])
        await settle()
    finally:
        await process.terminate()
        process.ensure_gone()

    assert mid in discord.missed
    assert answers(discord, mid) == [FULL] and stored(tmp_path, [mid]) == [1]


async def test_messages_sent_while_hearth_was_killed_are_answered_once_after_the_restart(
    model: FakeOpenAI, discord: FakeDiscord, tmp_path: Path
) -> None:
    first = await on_discord(hearth(model, tmp_path, discord=discord), discord)
    try:
        await first.kill()
    finally:
        first.ensure_gone()
    hello = next(iter(discord.posted.values())).reply_to
    sent = await ask(discord, 3, "while it was down")

    second = await hearth(model, tmp_path, discord=discord).start()
    try:
        await answered(discord, sent)
        await settle()
    finally:
        await second.terminate()
        second.ensure_gone()

    assert set(sent) <= set(discord.missed)
    assert [answers(discord, mid).count(FULL) for mid in sent] == [1, 1, 1]
    assert stored(tmp_path, sent) == [1, 1, 1]
    assert hello is not None and answers(discord, hello) == [FULL], "answered again after the restart"


async def test_discord_crashing_leaves_telegram_serving_and_is_restarted(
    model: FakeOpenAI, discord: FakeDiscord, telegram: FakeTelegram, tmp_path: Path
) -> None:
    process = await on_discord(hearth(model, tmp_path, discord=discord, telegram=telegram), discord)
    try:
        await discord.send_garbage()  # discord.py's client raises: not JSON
        telegram.user_says(ALICE_DM, ALICE, "still there?")
        await until(lambda: any(FULL in m.text for m in telegram.bot_messages(ALICE_DM)), 20)
        await until(lambda: len(discord.identifies) == 2 and bool(discord.shards), 20)  # restarted
        [mid] = await ask(discord, 1, "and on Discord?")
        await answered(discord, [mid], 20)

        assert process.process is not None and process.process.returncode is None
    finally:
        await process.terminate()
        process.ensure_gone()

    log = process.tail(400)
    assert log.count("discord failed unexpectedly") == 1 and "JSONDecodeError" in log


async def test_an_update_nobody_can_read_is_skipped_and_the_next_answered(
    model: FakeOpenAI, telegram: FakeTelegram, tmp_path: Path
) -> None:
    process = await hearth(model, tmp_path, telegram=telegram).start()
    try:
        await process.wait_for_log("serving @HearthTestBot by long polling", START_WITHIN_S)
        poll = {"message_id": 9001, "date": int(time.time()), "chat": ALICE_DM.json(), "from": ALICE.json(),
                "poll": {"id": "p1", "question": "tea or coffee?"}}  # without the newer required fields
        bad = telegram.deliver_raw({"message": poll})
        telegram.user_says(ALICE_DM, ALICE, "hello?")
        await until(lambda: any(FULL in m.text for m in telegram.bot_messages(ALICE_DM)), 20)

        assert process.process is not None and process.process.returncode is None
    finally:
        await process.terminate()
        process.ensure_gone()

    assert f"update {bad} could not be read" in process.tail(400)
    assert "tea or coffee" not in process.tail(400)


async def test_telegram_down_past_platform_down_s_ends_hearth_in_time_with_one_clear_line(
    model: FakeOpenAI, telegram: FakeTelegram, tmp_path: Path
) -> None:
    telegram.outage(math.inf)
    started = time.monotonic()
    process = await hearth(model, tmp_path, telegram=telegram, platform_down_s="5").start()
    try:
        await process.wait_for_log("could not check the Telegram token now", START_WITHIN_S)
        checked = time.monotonic()  # the token check's own calls are over: the adapter's come next
        code = await process.wait(30)
    finally:
        process.ensure_gone()
    ended = time.monotonic()
    first_failure = min(c.at for c in telegram.calls_to("getMe") if c.at > checked)

    assert code == 1
    down = ended - first_failure
    assert 5.0 <= down < 9.0, f"exit {down:.1f} s after Telegram first failed, {ended - started:.1f} s in all"
    log = process.tail(400)
    assert "Traceback" not in log
    assert len([line for line in log.splitlines() if "telegram unreachable for" in line]) == 1
