"""Nothing lost when a dependency misbehaves: the real `hearth run` against the fake
Telegram while its database fills up, is locked by another process or stops, and while
Telegram answers 502. Counts what was confirmed to Telegram, stored, answered and shown.

These run Hearth on the remote engine kind against a fake OpenAI-compatible server
(tests/engine/fake_openai.py): the engine is not what is tested, and it starts in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from tests.adapters.discord.fake_discord import FakeDiscord
from tests.adapters.telegram.fake_telegram import Chat, FakeTelegram, User, running
from tests.app import test_platform_faults as discord_faults
from tests.app.process import HearthProcess, hearth_env, rows, until
from tests.conftest import small_tmpfs
from tests.engine.fake_openai import FakeOpenAI

MENTION = "@HearthTestBot"
OWNER = User(300, "Owner", "owner")
OWNER_DM = Chat(OWNER.id, "private")
PEOPLE = [User(400 + n, f"Person {n}", f"person{n}") for n in range(50)]
GROUPS = [Chat(-3000 - n, "supergroup", f"Room {n}") for n in range(5)]
WORDS = tuple(f" w{n}" for n in range(20))
FULL = "".join(WORDS).strip()
ANSWER_WITHIN_S = 60.0
SPEAKERS = itertools.count()  # who speaks next: never one person twice in a test


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with running() as fake:
        yield fake


@pytest.fixture
async def model() -> AsyncIterator[FakeOpenAI]:
    server = await FakeOpenAI(words=WORDS, chunk_delay=0.1).start()
    try:
        yield server
    finally:
        await server.stop()


def hearth(telegram: FakeTelegram, model: FakeOpenAI, tmp_path: Path, **settings: str) -> HearthProcess:
    settings.setdefault("db_path", str(tmp_path / "hearth.sqlite3"))
    env = hearth_env(
        tmp_path / "data", Path(settings.pop("db_path")), telegram_token=telegram.token,
        telegram_base_url=telegram.base_url, engine_kind="remote", engine_urls=model.url,
        max_reply_tokens="64", admin_ids=f"telegram:{OWNER.id}", **settings,
    )
    return HearthProcess(tmp_path, env)


async def started(process: HearthProcess, telegram: FakeTelegram) -> HearthProcess:
    await process.start()
    await process.wait_for_log("serving @HearthTestBot by long polling", 60)
    telegram.user_says(OWNER_DM, OWNER, "/help")  # the owner's chat exists: Hearth may write there
    await until(lambda: bool(telegram.bot_messages(OWNER_DM)), 20)
    return process


def ask(telegram: FakeTelegram, count: int, tag: str) -> list[tuple[Chat, int]]:
    """`count` mentions spread over the groups, each from a person who has not spoken yet
    (one person's waiting messages would be answered together)."""
    sent = []
    for n in range(count):
        group, person = GROUPS[n % len(GROUPS)], PEOPLE[next(SPEAKERS) % len(PEOPLE)]
        sent.append((group, telegram.user_says(group, person, f"{MENTION} {tag} {n}")))
    return sent


def confirmed(telegram: FakeTelegram) -> int:
    """Updates Telegram was told were received (the highest offset asked for, less one)."""
    offsets = [int(c.params.get("offset") or 0) for c in telegram.calls_to("getUpdates") if c.status == 200]
    return max(offsets, default=1) - 1


def answers(telegram: FakeTelegram, chat: Chat, message_id: int) -> list[str]:
    """What each bot message quoting `message_id` shows now."""
    return [m.text for m in telegram.bot_messages(chat) if m.reply_to == message_id]


def complete(telegram: FakeTelegram, sent: list[tuple[Chat, int]]) -> list[int]:
    """For each message sent, how many complete answers it got."""
    return [answers(telegram, chat, mid).count(FULL) for chat, mid in sent]


def owner_heard(telegram: FakeTelegram, words: str) -> bool:
    return any(words in m.text for m in telegram.bot_messages(OWNER_DM))


def unstored_but_confirmed(telegram: FakeTelegram, db: Path) -> int:
    """Updates Telegram was told were received beyond the messages stored (the owner's
    /help is the one update that is not a message to store)."""
    return confirmed(telegram) - (len(user_rows(db)) + 1)


def user_rows(db: Path) -> list[tuple[object, ...]]:
    return rows(db, "SELECT platform_message_id, status FROM messages WHERE role = 'user' ORDER BY id")


def no_apology(telegram: FakeTelegram) -> bool:
    return not any("went wrong" in m.text or "database" in m.text
                   for g in GROUPS for m in telegram.bot_messages(g))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of its own, unmounted afterwards."""
    with small_tmpfs(tmp_path / "disk", "4m") as mount:
        yield mount


def fill(disk: Path) -> Path:
    """Fill `disk` to the last byte; the filler file, to delete later."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as file:  # unbuffered: closing it writes nothing more
        try:
            while True:
                file.write(b"\0" * 65536)
        except OSError:
            pass
    return filler


async def test_a_full_disk_loses_nothing_confirms_nothing_unstored_and_answers_once_space_returns(
    telegram: FakeTelegram, model: FakeOpenAI, tmp_path: Path, small_disk: Path
) -> None:
    db = small_disk / "hearth.sqlite3"
    process = await started(hearth(telegram, model, tmp_path, db_path=str(db)), telegram)
    try:
        before = ask(telegram, 3, "before")
        await until(lambda: complete(telegram, before) == [1, 1, 1], ANSWER_WITHIN_S)
        # Once idle, the WAL is truncated: from then on every write needs new space (a WAL
        # that kept its size would take writes into its old frames, full disk or not).
        wal = db.with_name(db.name + "-wal")
        await until(lambda: not wal.exists() or wal.stat().st_size == 0, 30)
        filler = await asyncio.to_thread(fill, small_disk)

        during = ask(telegram, 6, "during")
        await process.wait_for_log("the database is failing", 30)
        await asyncio.sleep(3)
        assert unstored_but_confirmed(telegram, db) <= 0, "confirmed an update that was not stored"
        assert len(user_rows(db)) < len(before) + len(during), "the disk was not full"

        filler.unlink()
        await until(lambda: complete(telegram, during) == [1] * 6, ANSWER_WITHIN_S)
        await until(lambda: owner_heard(telegram, "database is back"), 20)
    finally:
        seconds = await process.terminate()
        process.ensure_gone()

    assert seconds < 10.0
    assert complete(telegram, before + during) == [1] * 9, "each answered exactly once"
    assert owner_heard(telegram, "database is failing") and no_apology(telegram)
    statuses = dict(user_rows(db))
    assert all(statuses.get(str(mid)) == "answered" for _, mid in before + during)
    assert "Traceback" not in process.tail(400)


async def test_a_lock_held_by_another_process_delays_but_loses_nothing_and_cuts_no_reply(
    telegram: FakeTelegram, model: FakeOpenAI, tmp_path: Path
) -> None:
    db = tmp_path / "hearth.sqlite3"
    process = await started(hearth(telegram, model, tmp_path), telegram)
    try:
        streaming = ask(telegram, 3, "streaming")
        await until(lambda: all(answers(telegram, c, m) for c, m in streaming), 30)  # first parts shown
        with closing(sqlite3.connect(db, isolation_level=None, timeout=10)) as other:
            other.execute("BEGIN EXCLUSIVE")
            try:
                during = ask(telegram, 4, "during")
                await asyncio.sleep(12)  # every reply above has streamed to its end meanwhile
                assert len(user_rows(db)) == len(streaming), "nothing stored while locked"
                assert unstored_but_confirmed(telegram, db) <= 0, "confirmed while it could not store"
                assert all(answers(telegram, c, m) == [FULL] for c, m in streaming), "shown in full"
            finally:
                other.execute("ROLLBACK")
        await until(lambda: complete(telegram, streaming + during) == [1] * 7, ANSWER_WITHIN_S)
        await until(lambda: all(s == "answered" for _, s in user_rows(db)), 20)
    finally:
        await process.terminate()
        process.ensure_gone()

    assert len(user_rows(db)) == 7
    replies = rows(db, "SELECT COUNT(*), COUNT(DISTINCT reply_to) FROM messages WHERE role = 'assistant'")
    assert replies == [(7, 7)], "each reply recorded once"
    assert no_apology(telegram)
    assert "Traceback" not in process.tail(400)


async def test_replies_streaming_through_a_minute_of_502_are_finished_once_when_telegram_is_back(
    telegram: FakeTelegram, model: FakeOpenAI, tmp_path: Path
) -> None:
    db = tmp_path / "hearth.sqlite3"
    process = await started(hearth(telegram, model, tmp_path), telegram)
    try:
        sent = ask(telegram, 5, "streaming")
        await until(lambda: all(answers(telegram, c, m) for c, m in sent), 30)
        telegram.outage(15)
        await process.wait_for_log("is delivered when telegram is back", 30)
        cut = [answers(telegram, c, m) for c, m in sent]
        assert any(shown != [FULL] for shown in cut), "the outage cut some replies"
        await until(lambda: complete(telegram, sent) == [1] * 5, ANSWER_WITHIN_S)
    finally:
        await process.terminate()
        process.ensure_gone()

    assert [answers(telegram, c, m) for c, m in sent] == [[FULL]] * 5, "one message each, finished"
    statuses = rows(db, "SELECT role, status FROM messages ORDER BY id")
    assert statuses.count(("assistant", "answered")) == 5 and ("user", "failed") not in statuses
    assert process.process is not None and process.process.returncode == 0, "no exit within PLATFORM_DOWN_S"


class PostgresServer:
    """A PostgreSQL server of the test's own on a fixed loopback port, stopped and started
    at will (Debian's binaries; as root, run as the `postgres` user, as PostgreSQL insists)."""

    def __init__(self, bindir: Path, directory: Path, port: int) -> None:
        self._bin = bindir
        self._data = directory / "data"
        self._dir = directory
        self.port = port

    @property
    def url(self) -> str:
        return f"postgresql://hearth@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        command = [str(self._bin / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        self._run("initdb", "-D", str(self._data), "-U", "hearth", "--auth=trust", "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self._dir} -c fsync=off"
        self._run("pg_ctl", "start", "-D", str(self._data), "-l", str(self._dir / "log"), "-w", "-o", options)

    def stop(self) -> None:
        self._run("pg_ctl", "stop", "-D", str(self._data), "-m", "fast", "-w")


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        pytest.skip("PostgreSQL is not installed (scripts/test-postgres.sh installs it; .ci/run runs that)")
    directory = Path(tempfile.mkdtemp(prefix="hearth-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres")
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = PostgresServer(found[-1].parent, directory, port)
    server.init()
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)


async def test_postgresql_stopped_and_restarted_loses_nothing_and_shown_replies_are_never_answered_again(
    telegram: FakeTelegram, model: FakeOpenAI, tmp_path: Path, postgres: PostgresServer
) -> None:
    first = await started(hearth(telegram, model, tmp_path, database_url=postgres.url), telegram)
    try:
        streaming = ask(telegram, 3, "streaming")
        await until(lambda: all(answers(telegram, c, m) for c, m in streaming), 30)
        await asyncio.to_thread(postgres.stop)
        during = ask(telegram, 5, "during")
        await first.wait_for_log("the database is failing", 30)
        await asyncio.sleep(8)  # the streaming replies end, shown in full, while it is down
        assert all(answers(telegram, c, m) == [FULL] for c, m in streaming)
        await asyncio.to_thread(postgres.start)
        await until(lambda: complete(telegram, streaming + during) == [1] * 8, ANSWER_WITHIN_S)
        await until(lambda: owner_heard(telegram, "database is back"), 30)
        assert await first.terminate() < 10.0
    finally:
        first.ensure_gone()

    second = await started(hearth(telegram, model, tmp_path, database_url=postgres.url), telegram)
    try:
        late = ask(telegram, 1, "after the restart")
        await until(lambda: complete(telegram, late) == [1], ANSWER_WITHIN_S)
    finally:
        await second.terminate()
        second.ensure_gone()

    shown = [answers(telegram, c, m) for c, m in streaming + during]
    assert shown == [[FULL]] * 8, "answered once each, none marked interrupted and answered again"
    assert no_apology(telegram)
    assert "after the restart: answering" not in second.tail(400), "nothing was left pending"
    assert "Traceback" not in first.tail(400) + second.tail(400)


@pytest.fixture
async def discord() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake


@pytest.fixture
async def short_model() -> AsyncIterator[FakeOpenAI]:
    """Answers what tests/app/test_platform_faults.py's helpers look for."""
    server = await FakeOpenAI(words=discord_faults.WORDS).start()
    try:
        yield server
    finally:
        await server.stop()


async def test_discord_messages_the_store_cannot_take_wait_in_the_journal_even_across_a_kill(
    short_model: FakeOpenAI, discord: FakeDiscord, tmp_path: Path
) -> None:
    """Discord cannot deliver a message again: while the database is locked its messages
    are journalled (fsynced beside the database), answered once it is back; and those a
    kill -9 caught in the journal are answered once after the restart."""
    database = discord_faults.db(tmp_path)
    journal = database.with_name(database.name + ".journal")
    process = discord_faults.hearth(short_model, tmp_path, discord=discord)
    first = await discord_faults.on_discord(process, discord)
    try:
        with closing(sqlite3.connect(database, isolation_level=None, timeout=10)) as other:
            other.execute("BEGIN EXCLUSIVE")
            try:
                during = await discord_faults.ask(discord, 4, "locked")
                await until(lambda: journal.exists() and len(journal.read_text().splitlines()) == 4, 30)
                assert all(discord_faults.answers(discord, mid) == [] for mid in during), "nobody told"
            finally:
                other.execute("ROLLBACK")
        await discord_faults.answered(discord, during)
        await until(lambda: not journal.exists(), 20)

        with closing(sqlite3.connect(database, isolation_level=None, timeout=10)) as other:
            other.execute("BEGIN EXCLUSIVE")
            try:
                caught = await discord_faults.ask(discord, 2, "killed")
                await until(lambda: journal.exists() and len(journal.read_text().splitlines()) == 2, 30)
                await first.kill()
            finally:
                other.execute("ROLLBACK")
    finally:
        first.ensure_gone()

    second = discord_faults.hearth(short_model, tmp_path, discord=discord)
    await second.start()
    try:
        await discord_faults.answered(discord, caught)
        await until(lambda: not journal.exists(), 20)
        await asyncio.sleep(1.0)  # a second answer would come now
    finally:
        await second.terminate()
        second.ensure_gone()

    assert [len(discord_faults.answers(discord, mid)) for mid in during + caught] == [1] * 6
    assert discord_faults.stored(tmp_path, during + caught) == [1] * 6
    assert "Traceback" not in first.tail(400) + second.tail(400)
