"""What a server owner meets, as real processes: `hearth run` refusing a misconfiguration in
seconds (a misspelt variable, a malformed token, a GPU-only model without a GPU, a second
process with the same instance name), its health endpoints answering during start-up and
its JSON logs, and `hearth export`, `backup`, `forget` on a real SQLite file.

`hearth run` here uses the remote engine against a fake OpenAI-compatible server
(tests/engine/fake_openai.py) and the fake Telegram: it starts in seconds, no model loads.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import aiohttp
import pytest

from bot.messages import ConversationKey, Usage, Verdict
from bot.store import SqliteStore
from engine.devices import device_problem
from engine.registry import Registry
from tests.adapters.telegram.fake_telegram import FakeTelegram, running
from tests.app.process import HearthProcess, hearth_env
from tests.core.postgres_server import fresh_schema
from tests.engine.fake_openai import FakeOpenAI

REFUSED_WITHIN_S = 30.0  # a refusal comes before any model: seconds (the interpreter's start-up is most)
GROUP = ConversationKey("telegram", "-100")
DM = ConversationKey("telegram", "555")


async def hearth_cli(cwd: Path, env: dict[str, str], *args: str, within: float = 60) -> tuple[int, str, str]:
    """`python -m bot ARGS` to its end: exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), within)
    finally:
        if process.returncode is None:
            process.kill()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with running() as fake:
        yield fake


# Refused before anything loads.


async def test_a_misspelt_variable_stops_hearth_run_before_anything(tmp_path: Path) -> None:
    env = hearth_env(tmp_path / "data", tmp_path / "hearth.sqlite3", modle="qwen2.5-1.5b")
    started = time.monotonic()
    code, _, err = await hearth_cli(tmp_path, env, "run", within=REFUSED_WITHIN_S)

    assert code == 2, err
    assert "HEARTH_MODLE (in the environment): no such setting; did you mean HEARTH_MODEL?" in err
    assert time.monotonic() - started < REFUSED_WITHIN_S and not (tmp_path / "data").exists()


async def test_a_malformed_telegram_token_stops_hearth_run_unquoted(tmp_path: Path) -> None:
    token = "bot123456789:AAH-pasted-with-its-prefix"
    env = hearth_env(tmp_path / "data", tmp_path / "hearth.sqlite3", telegram_token=token)
    code, _, err = await hearth_cli(tmp_path, env, "run", within=REFUSED_WITHIN_S)

    assert code == 2 and "HEARTH_TELEGRAM_TOKEN: " in err and "not a Telegram bot token" in err
    assert token not in err and not (tmp_path / "data").exists()


@pytest.mark.skipif(device_problem(Registry.load().get("shape-qwen2.5-7b-awq")) is None,
                    reason="this machine can serve GPU-only models")
async def test_a_gpu_only_model_is_refused_at_once_without_a_gpu(tmp_path: Path) -> None:
    env = hearth_env(tmp_path / "data", tmp_path / "hearth.sqlite3", model="shape-qwen2.5-7b-awq")
    code, _, err = await hearth_cli(tmp_path, env, "run", within=REFUSED_WITHIN_S)

    assert code == 2, err
    assert "HEARTH_MODEL: shape-qwen2.5-7b-awq needs a GPU" in err
    assert not (tmp_path / "data" / "models").exists(), "nothing was built"


# Health during start-up; JSON logs.


async def get(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def answers(url: str) -> bool:
    try:
        return (await get(url))[0] == 200
    except aiohttp.ClientError:
        return False


async def test_health_answers_during_start_up_before_the_engine_serves(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    engine_port, metrics = free_port(), f"http://127.0.0.1:{free_port()}"
    env = hearth_env(
        tmp_path / "data", tmp_path / "hearth.sqlite3", telegram_token=telegram.token,
        telegram_base_url=telegram.base_url, engine_kind="remote",
        engine_urls=f"http://127.0.0.1:{engine_port}/v1", metrics_port=metrics.rsplit(":", 1)[1],
        log_format="json",
    )
    hearth = HearthProcess(tmp_path, env)
    model = FakeOpenAI(words=(" hello",), port=engine_port)  # not listening yet: the engine waits
    try:
        await hearth.start()
        await asyncio.wait_for(_until_answers(metrics + "/healthz"), 30)
        _, alive = await get(metrics + "/healthz")
        waiting_status, waiting = await asyncio.wait_for(_until_engine_says(metrics, "connecting to"), 30)
        await model.start()
        await asyncio.wait_for(_until_answers(metrics + "/readyz"), 60)
        _, ready = await get(metrics + "/readyz")
        asked = await hearth_cli(tmp_path, env, "health")  # what a container's HEALTHCHECK runs
        async with aiohttp.ClientSession() as session, session.get(metrics + "/metrics") as response:
            scraped = await response.text()
        assert await hearth.terminate() < 15
    finally:
        hearth.ensure_gone()
        await model.stop()

    assert alive["phase"] == "starting"
    assert waiting_status == 503 and isinstance(waiting["parts"], dict)
    assert waiting["parts"]["engine"]["ok"] is False
    assert waiting["parts"]["store"] == {"ok": True, "detail": "writable"}
    assert ready["phase"] == "serving" and set(ready["parts"]) == {"engine", "store", "platform:telegram"}
    assert asked[0] == 0 and json.loads(asked[1])["ready"] is True
    assert "hearth_build_info{" in scraped and "hearth_messages_received_total" in scraped
    records = [json.loads(line) for line in hearth.log if line.strip()]  # every line is a JSON object
    assert any("serving @HearthTestBot" in str(r["message"]) for r in records)


async def _until_answers(url: str) -> None:
    while not await answers(url):  # noqa: ASYNC110 - another process's state
        await asyncio.sleep(0.2)


async def _until_engine_says(base: str, words: str) -> tuple[int, dict[str, object]]:
    """/readyz once its engine part's detail has `words` in it."""
    while True:
        status, body = await get(base + "/readyz")
        parts = body["parts"]
        if isinstance(parts, dict) and "engine" in parts and words in parts["engine"]["detail"]:
            return status, body
        await asyncio.sleep(0.2)


# One process per instance name on a shared database.


async def test_a_second_hearth_with_the_same_instance_name_is_refused(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    model = await FakeOpenAI(words=(" hello",)).start()
    try:
        async with fresh_schema() as url:
            def env(name: str) -> dict[str, str]:
                return hearth_env(
                    tmp_path / name, tmp_path / name / "unused.sqlite3", database_url=url,
                    telegram_token=telegram.token, telegram_base_url=telegram.base_url,
                    engine_kind="remote", engine_urls=model.url)

            first = HearthProcess(tmp_path, env("first"))
            try:
                await first.start()
                await first.wait_for_log("serving @HearthTestBot by long polling", 60)
                code, _, err = await hearth_cli(tmp_path, env("second"), "run", within=60)
                assert await first.terminate() < 15
            finally:
                first.ensure_gone()
            again = HearthProcess(tmp_path, env("third"))
            try:
                await again.start()
                await again.wait_for_log("serving @HearthTestBot by long polling", 60)  # released
                await again.terminate()
            finally:
                again.ensure_gone()
    finally:
        await model.stop()

    assert code == 2, err
    assert "HEARTH_INSTANCE_NAME: another Hearth runs as instance 'hearth' on this database (process" in err


# The owner's data on a real SQLite file.


async def fill(db: Path) -> None:
    """Ann (555) and Bob (666) in a group, Ann in private; replies, verdicts, usage."""
    async with SqliteStore(db) as store:
        for key, author, text in [(GROUP, "555", "ann in the group"), (GROUP, "666", "bob in the group"),
                                  (DM, "555", "ann in private")]:
            asked = await store.add_message(key, "user", text, author_id=author, author_name=f"name-{author}",
                                            status="answered")
            reply = await store.add_message(key, "assistant", f"to {text}", author_id="bot", reply_to=asked)
            await store.add_verdict(key, reply, "output", Verdict(False, "words"))
        await store.add_usage([Usage("2026-11-22", "telegram", "-100", "555", "Ann", messages=1),
                               Usage("2026-11-22", "telegram", "-100", "666", "Bob", messages=1)])


def count(db: Path, sql: str) -> int:
    with closing(sqlite3.connect(db)) as conn:
        return int(conn.execute(sql).fetchone()[0])


async def test_export_backup_and_forget_on_a_real_sqlite_file(tmp_path: Path) -> None:
    db, copy = tmp_path / "data" / "hearth.sqlite3", tmp_path / "backup.sqlite3"
    await fill(db)
    env = hearth_env(tmp_path / "data", db)

    code, out, _ = await hearth_cli(tmp_path, env, "export")
    assert code == 0 and len(lines := [json.loads(line) for line in out.splitlines()]) == 6
    assert lines[0] | {"time": "", "created_at": 0} == {
        "platform": "telegram", "channel": "-100", "thread": "", "id": 1, "time": "", "created_at": 0,
        "role": "user", "author_id": "555", "author_name": "name-555", "text": "ann in the group",
        "status": "answered", "reply_to": None, "platform_message_id": None, "prompt_tokens": 0,
        "cached_tokens": 0, "reply_tokens": 0}
    code, out, _ = await hearth_cli(tmp_path, env, "export", "--conversation", "telegram:555")
    assert [json.loads(line)["text"] for line in out.splitlines()] == ["ann in private", "to ann in private"]

    code, _, err = await hearth_cli(tmp_path, env, "backup", str(copy))
    assert code == 0 and "checked" in err and count(copy, "SELECT COUNT(*) FROM messages") == 6
    assert (await hearth_cli(tmp_path, env, "backup", str(copy)))[0] == 2, "an existing file needs --force"

    code, out, _ = await hearth_cli(tmp_path, env, "forget", "--user", "telegram:555")
    assert code == 0, out
    assert out.strip() == (
        "forgot telegram:555: 2 messages, 2 replies to them, 2 moderation verdicts, 1 usage rows")
    assert count(db, "SELECT COUNT(*) FROM messages WHERE author_id = '555' OR text LIKE '%ann%'") == 0
    assert count(db, "SELECT COUNT(*) FROM messages") == 2 and count(db, "SELECT COUNT(*) FROM verdicts") == 1
    assert count(db, "SELECT COUNT(*) FROM usage WHERE author_id = '555'") == 0
    assert count(copy, "SELECT COUNT(*) FROM messages") == 6, "the backup is a copy"


async def test_the_owner_commands_refuse_what_is_not_there(tmp_path: Path) -> None:
    env = hearth_env(tmp_path / "data", tmp_path / "data" / "hearth.sqlite3")
    code, _, err = await hearth_cli(tmp_path, env, "export")
    assert code == 2 and "no database at" in err and not (tmp_path / "data").exists()
    code, _, err = await hearth_cli(tmp_path, env, "forget", "--user", "telegram:@ann")
    assert code == 2 and "--user is PLATFORM:ID" in err
    pg = hearth_env(tmp_path / "data", tmp_path / "db", database_url="postgresql://u:pw@db.example:5432/hearth")
    code, _, err = await hearth_cli(tmp_path, pg, "backup", str(tmp_path / "b"))
    assert code == 2 and "pg_dump" in err and "pw" not in err


async def test_version_names_hearth_and_vllm(tmp_path: Path) -> None:
    code, out, _ = await hearth_cli(tmp_path, hearth_env(tmp_path, tmp_path / "db"), "--version")
    assert code == 0 and out.startswith("hearth 0.1.0 (Python 3.") and "vLLM" in out


async def test_health_without_a_port_or_a_hearth_says_so(tmp_path: Path) -> None:
    code, _, err = await hearth_cli(tmp_path, hearth_env(tmp_path, tmp_path / "db"), "health")
    assert code == 2 and "HEARTH_METRICS_PORT is not set" in err
    env = hearth_env(tmp_path, tmp_path / "db", metrics_port=str(free_port()))
    code, _, err = await hearth_cli(tmp_path, env, "health")
    assert code == 1 and "does not answer" in err
