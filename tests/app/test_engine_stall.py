"""A stalled engine: the real `hearth run` on the real engine against the fake Telegram, with
vLLM's engine core stopped by SIGSTOP mid-reply (it still exists, it just makes no progress).
Counts what each user and the operator were told, and what was answered."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from bot.i18n import TEXTS
from tests.adapters.telegram.fake_telegram import Chat, FakeTelegram, User, running
from tests.app.process import HearthProcess, engine_pids, gone, hearth_env, rows, until

pytestmark = pytest.mark.engine

MENTION = "@HearthTestBot"
TIMEOUT_S = 5.0  # HEARTH_ENGINE_TIMEOUT_S: no chunk for this long with replies in flight is a stall
APOLOGY_WITHIN_S = TIMEOUT_S + 5.0  # the watcher's tick, the reply's tick, the delivery
BACK_WITHIN_S = 90.0  # a model load on CPU, shared with other tests
OWNER = User(300, "Owner", "owner")
DM = Chat(OWNER.id, "private")
GROUPS = [Chat(-3000 - n, "supergroup", f"Room {n}") for n in range(3)]
PEOPLE = [User(500 + n, f"Person {n}", f"person{n}") for n in range(3)]
STALLED = TEXTS["engine_stalled"]["en"]
WAITING = TEXTS["restarting"]["en"]


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with running() as fake:
        yield fake


def shown(fake: FakeTelegram, chat: Chat, message_id: int) -> list[str]:
    """The text of every bot message quoting `message_id`, oldest first."""
    return [m.text for m in fake.bot_messages(chat) if m.reply_to == message_id]


def stored(db: Path, text: str) -> tuple[str, int]:
    """The user message `text`'s status and how many replies to it were stored (complete
    answers); ("absent", 0) before it is stored."""
    found = rows(db, "SELECT id, status FROM messages WHERE role = 'user' AND text = ?",
                 text.removeprefix(MENTION).strip())  # stored without the mention
    if not found:
        return "absent", 0
    [(message_id, status)] = found
    [(replies,)] = rows(db, "SELECT COUNT(*) FROM messages WHERE role = 'assistant' AND reply_to = ?",
                        message_id)
    return str(status), int(str(replies))


def told_owner(fake: FakeTelegram, *words: str) -> list[str]:
    return [m.text for m in fake.bot_messages(DM) if all(w in m.text for w in words)]


async def stop(process: HearthProcess) -> None:
    """SIGTERM; then end whatever of its processes outlived it. Stopped while a model loads
    (this test failing mid-restart), Hearth leaves the engine core that load was starting
    (its pid was not known yet to the lifeline); on a shared machine it must not stay."""
    spawned: list[psutil.Process] = []
    with contextlib.suppress(psutil.Error):
        spawned = psutil.Process(process.pid).children(recursive=True)
    try:
        await process.terminate()
    finally:
        process.ensure_gone()
        for leftover in spawned:  # psutil checks each is still the process it was
            with contextlib.suppress(psutil.Error):
                leftover.kill()


async def test_a_stopped_engine_core_is_noticed_its_users_told_and_it_is_restarted(
    fake: FakeTelegram, data_dir: Path, tmp_path: Path
) -> None:
    db = tmp_path / "hearth.sqlite3"
    env = hearth_env(data_dir, db, telegram_token=fake.token, telegram_base_url=fake.base_url,
                     admin_ids=f"telegram:{OWNER.id}", engine_timeout_s=str(TIMEOUT_S),
                     max_reply_tokens="400")  # seconds of streaming on CPU
    texts = [f"{MENTION} {what}" for what in ("a long story", "sent while it hangs",
                                              "sent while it restarts", "a long story, again")]
    process = await HearthProcess(tmp_path, env).start()
    stopped: list[psutil.Process] = []
    try:
        await process.wait_for_log("serving @HearthTestBot by long polling")
        [engine] = engine_pids(db)
        fake.user_says(DM, OWNER, "/status")  # a Telegram bot may write only to whom wrote to it
        await until(lambda: bool(told_owner(fake, "model: demo (none), ready")), 30)
        asked = fake.user_says(GROUPS[0], PEOPLE[0], texts[0])
        await until(lambda: bool(shown(fake, GROUPS[0], asked)), 60, 0.02)  # its reply streams

        core = psutil.Process(engine)
        core.suspend()  # SIGSTOP: the engine core exists but makes no progress
        stopped.append(core)
        at = time.monotonic()
        before = fake.user_says(GROUPS[1], PEOPLE[1], texts[1])
        await until(lambda: STALLED in shown(fake, GROUPS[0], asked), APOLOGY_WITHIN_S, 0.1)
        apology_s = time.monotonic() - at
        await until(lambda: bool(told_owner(fake, "engine stalled")), 10)
        during = fake.user_says(GROUPS[2], PEOPLE[2], texts[2])
        fake.user_says(DM, OWNER, "/status")
        await until(lambda: len(told_owner(fake, "model:")) == 2, 30)
        await until(lambda: bool(told_owner(fake, "is back")), BACK_WITHIN_S)
        back_s = time.monotonic() - at
        old_gone, engines = gone([engine], 1.0), engine_pids(db)
        await until(lambda: [stored(db, t)[0] for t in texts[1:3]] == ["answered"] * 2, 60)
        answered_s = time.monotonic() - at
        again = fake.user_says(GROUPS[0], PEOPLE[0], texts[3])
        await until(lambda: stored(db, texts[3])[0] == "answered", 60)
    finally:
        for core in stopped:  # only the process this test stopped, if it still is that process
            with contextlib.suppress(psutil.Error):
                core.send_signal(signal.SIGCONT)
        await stop(process)

    print(f"SIGSTOP to apology {apology_s:.1f} s, to the engine back {back_s:.1f} s, "
          f"to the waiting messages answered {answered_s:.1f} s")
    assert old_gone, "the stopped engine core was left running"
    assert engines and engine not in engines, "the pid file follows the new engine"
    assert [stored(db, t) for t in texts] == [("failed", 0)] + [("answered", 1)] * 3
    assert shown(fake, GROUPS[0], asked) == [STALLED], "the stalled reply: one apology in its place"
    for chat, message_id in ((GROUPS[1], before), (GROUPS[2], during), (GROUPS[0], again)):
        assert shown(fake, chat, message_id) and not {STALLED, WAITING} & set(shown(fake, chat, message_id))
    status = told_owner(fake, "model:")[-1]
    assert "model: demo (none), stalled" in status or "engine: 1 restarts" in status, status
    assert len(told_owner(fake, "engine stalled", "no reply progress")) == 1
    assert len(told_owner(fake, "is back")) == 1
    assert "Traceback" not in process.tail(400)
