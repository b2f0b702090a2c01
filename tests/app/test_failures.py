"""Nothing lost, always recovers: the real `hearth run` with the real engine against the fake
Telegram, killed by pid at chosen moments. Counts what was delivered, stored and answered."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from tests.adapters.telegram.fake_telegram import Chat, FakeTelegram, User, running
from tests.app.process import HearthProcess, engine_pids, gone, hearth_env, rows, until

pytestmark = pytest.mark.engine

MENTION = "@HearthTestBot"
PEOPLE = [User(200 + n, f"Person {n}", f"person{n}") for n in range(400)]
GROUPS = [Chat(-2000 - n, "supergroup", f"Room {n}") for n in range(10)]
INTERRUPTED = "[interrupted"
ANSWER_WITHIN_S = 240.0
ORPHAN_GONE_S = 10.0


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with running() as fake:
        yield fake


def hearth(fake: FakeTelegram, data_dir: Path, db: Path, cwd: Path, **settings: str) -> HearthProcess:
    env = hearth_env(data_dir, db, telegram_token=fake.token, telegram_base_url=fake.base_url, **settings)
    return HearthProcess(cwd, env)


def burst(fake: FakeTelegram, per_group: int, tag: str) -> list[tuple[Chat, int]]:
    """`per_group` mentions in each group, interleaved, each from a different person (one
    person's waiting messages would be merged into one reply); (chat, message id) of each."""
    sent = []
    for n in range(per_group):
        for g, group in enumerate(GROUPS):
            person = PEOPLE[(n * len(GROUPS) + g) % len(PEOPLE)]
            sent.append((group, fake.user_says(group, person, f"{MENTION} {tag} {n}")))
    return sent


def confirmed(fake: FakeTelegram) -> int:
    """How many updates Telegram was told were received (the highest offset asked for, less one)."""
    offsets = [int(c.params.get("offset") or 0) for c in fake.calls_to("getUpdates")]
    return max(offsets, default=1) - 1


def answers(fake: FakeTelegram, chat: Chat, message_id: int) -> list[int]:
    """Ids of the bot messages quoting `message_id` that were not cut by a shutdown, oldest first."""
    return [m.message_id for m in fake.bot_messages(chat)
            if m.reply_to == message_id and INTERRUPTED not in m.text]


def complete_answers(fake: FakeTelegram, chat: Chat, message_id: int) -> int:
    return len(answers(fake, chat, message_id))


def stored_user_messages(db: Path) -> int:
    return int(rows(db, "SELECT COUNT(*) FROM messages WHERE role = 'user'")[0][0])


def noted_parts(db: Path) -> set[tuple[int, int]]:
    """(chat, platform id) of every reply part Hearth noted as shown (`Store.note_shown`).
    Telegram numbers messages per chat, so an id alone may name a part in another chat."""
    found = rows(db, "SELECT c.channel, json_extract(m.meta, '$.shown') FROM messages m"
                     " JOIN conversations c ON c.id = m.conversation_id WHERE m.role = 'user'")
    return {(int(chat), int(part)) for chat, shown in found if shown for part in json.loads(str(shown))}


def command_line(process: psutil.Process) -> str:
    with contextlib.suppress(psutil.Error):
        return " ".join(process.cmdline())
    return ""


def extra_answers(fake: FakeTelegram, sent: list[tuple[Chat, int]]) -> list[tuple[int, int, list[int]]]:
    """(chat, message, ids of its earlier answers) for each message answered more than once:
    every complete-looking answer but the last is one a restart should have marked."""
    found = []
    for chat, message_id in sent:
        shown = answers(fake, chat, message_id)
        if len(shown) > 1:
            found.append((chat.id, message_id, shown[:-1]))
    return found


async def test_kill_9_loses_nothing_leaves_no_orphans_and_answers_once_after_restart(
    fake: FakeTelegram, data_dir: Path, tmp_path: Path
) -> None:
    db = tmp_path / "hearth.sqlite3"
    first = await hearth(fake, data_dir, db, tmp_path).start()
    try:
        await first.wait_for_log("serving @HearthTestBot by long polling")
        engines = engine_pids(db)
        sent = burst(fake, 20, "before")
        await until(lambda: confirmed(fake) >= 100, 30)  # mid-flood: some answered, most waiting

        await first.kill()
    finally:
        first.ensure_gone()

    assert engines and gone(engines, ORPHAN_GONE_S), "vLLM's engine outlived a kill -9 of Hearth"
    assert stored_user_messages(db) >= confirmed(fake), "a confirmed update was never stored"
    noted = noted_parts(db)  # what the restart can find (the new answers' notes replace these)

    second = await hearth(fake, data_dir, db, tmp_path).start()
    try:
        await second.wait_for_log("serving @HearthTestBot")
        await until(lambda: all(complete_answers(fake, c, m) >= 1 for c, m in sent), ANSWER_WITHIN_S, 1.0)
        assert await second.terminate() < 10.0
    finally:
        second.ensure_gone()

    assert all(complete_answers(fake, c, m) >= 1 for c, m in sent)
    twice = extra_answers(fake, sent)
    assert [t for t in twice if any((t[0], part) in noted for part in t[2])] == [], (
        "a part noted as shown was left unmarked beside the new answer"
    )
    # The one gap no store closes (README, "When things fail"): the kill lands after the
    # platform took a first part, before its id came back. Queued behind the flood's
    # writes, that gap once left 6 of 10 parts unfound; now it is one round trip.
    assert len(twice) <= 1, f"answered more than once: {twice}"
    assert "Traceback" not in first.tail(400) + second.tail(400)


async def test_kill_9_while_the_model_loads_leaves_no_engine_process_behind(
    fake: FakeTelegram, data_dir: Path, tmp_path: Path
) -> None:
    """The engine's processes are watched as they appear, not once the model has loaded."""
    first = await hearth(fake, data_dir, tmp_path / "hearth.sqlite3", tmp_path).start()
    try:
        hearth_process = psutil.Process(first.pid)

        def started() -> list[psutil.Process]:
            with contextlib.suppress(psutil.Error):
                return hearth_process.children(recursive=True)
            return []

        def watchdog_and_engine() -> bool:
            lines = [command_line(p) for p in started()]
            return any("engine.lifeline" in line for line in lines) and len(lines) >= 2

        await until(watchdog_and_engine, 60, 0.05)
        await asyncio.sleep(1.0)  # a look for new processes every 0.2 s
        spawned = [p.pid for p in started() if "engine.lifeline" not in command_line(p)]
        assert "serving @HearthTestBot" not in first.tail(200), "the model loaded already"
        await first.kill()
    finally:
        first.ensure_gone()

    assert spawned and gone(spawned, ORPHAN_GONE_S), "a process of the loading engine outlived Hearth"


async def test_sigterm_mid_reply_exits_within_10_s_and_answers_the_cut_ones_after_restart(
    fake: FakeTelegram, data_dir: Path, tmp_path: Path
) -> None:
    db = tmp_path / "hearth.sqlite3"
    first = await hearth(fake, data_dir, db, tmp_path, max_reply_tokens="200").start()
    try:
        await first.wait_for_log("serving @HearthTestBot by long polling")
        engines = engine_pids(db)
        sent = burst(fake, 3, "streaming")
        await until(lambda: any(fake.bot_messages(g) for g in GROUPS), 60)

        seconds = await first.terminate()
        code = first.process.returncode if first.process else None
    finally:
        first.ensure_gone()

    assert code == 0 and seconds < 10.0, f"SIGTERM took {seconds:.1f} s, exit {code}"
    assert gone(engines, 5.0), "an engine process survived the exit"
    assert "Traceback" not in first.tail(400)
    shown = [m for g in GROUPS for m in fake.bot_messages(g)]
    recorded = rows(db, "SELECT platform_message_id FROM messages WHERE role = 'assistant'")
    stored = {str(r[0]) for r in recorded}
    assert all(str(m.message_id) in stored or INTERRUPTED in m.text for m in shown), (
        "a reply left visible was neither recorded nor marked interrupted"
    )

    second = await hearth(fake, data_dir, db, tmp_path).start()
    try:
        await until(lambda: all(complete_answers(fake, c, m) >= 1 for c, m in sent), ANSWER_WITHIN_S, 1.0)
    finally:
        await second.terminate()
        second.ensure_gone()
    assert [complete_answers(fake, c, m) for c, m in sent] == [1] * len(sent)


async def test_a_rejected_token_fails_fast_before_the_model_loads(
    fake: FakeTelegram, data_dir: Path, tmp_path: Path
) -> None:
    env = hearth_env(data_dir, tmp_path / "db.sqlite3", telegram_token="4242:WRONG-token",
                     telegram_base_url=fake.base_url)
    process = await HearthProcess(tmp_path, env).start()
    try:
        code = await process.wait(60)
    finally:
        process.ensure_gone()

    assert code == 1
    assert "rejected the bot token" in process.tail()
    assert "loading model" not in process.tail(), "the token must be checked before the model loads"
    assert "WRONG-token" not in process.tail(400)


async def test_a_dead_engine_is_restarted_and_the_message_waiting_for_it_answered(
    fake: FakeTelegram, data_dir: Path, tmp_path: Path
) -> None:
    db = tmp_path / "hearth.sqlite3"
    owner = User(300, "Owner", "owner")
    process = await hearth(fake, data_dir, db, tmp_path, admin_ids=f"telegram:{owner.id}").start()
    try:
        await process.wait_for_log("serving @HearthTestBot by long polling")
        [engine] = engine_pids(db)
        group, person = GROUPS[0], PEOPLE[0]

        os.kill(engine, signal.SIGKILL)  # vLLM's engine core dies under Hearth
        asked = fake.user_says(group, person, f"{MENTION} are you still there?")
        await until(lambda: complete_answers(fake, group, asked) == 1, ANSWER_WITHIN_S, 0.5)
        fake.user_says(Chat(owner.id, "private"), owner, "/status")
        dm = Chat(owner.id, "private")
        await until(lambda: any("engine: 1 restarts" in m.text for m in fake.bot_messages(dm)), 30)

        assert engine_pids(db) != [engine], "the pid file follows the new engine"
        assert gone([engine], 1.0)
        assert "died" in process.tail(200) and "is back" in process.tail(200)
    finally:
        await process.terminate()
        process.ensure_gone()
