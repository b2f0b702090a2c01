"""Secrets never leave: a server's key, a proxy's password in HEARTH_ENGINE_URLS, a server's
error body. The remote engine against a fake OpenAI-compatible server, Hearth wired by its
composition root, logging configured as `hearth run` does it, at DEBUG, and grepped."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from io import StringIO
from pathlib import Path
from typing import Any

import pytest

from bot import i18n
from bot.app.builder import App, HearthBuilder
from bot.app.settings import Settings
from bot.logs import configure_logging
from bot.messages import ConversationKey
from bot.moderation import AllowAllGate
from engine.errors import ModelLoadError
from engine.remote import RemoteEngine, RemoteOptions
from tests.conftest import make_settings
from tests.engine.fake_openai import FakeOpenAI
from tests.fakes import message

ROOM = ConversationKey("telegram", "room")
OPERATOR = "4242"
KEY = "sk-hearth-KEY-0123456789abcdef"
PASSWORD = "pw-PROXY-9876543210"


@contextmanager
def debug_log() -> Iterator[StringIO]:
    """Logging as `hearth run` sets it up (HEARTH_LOG_LEVEL=DEBUG, the settings' secrets
    scrubbed) into a buffer; the root logger as it was afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buffer, stderr = StringIO(), sys.stderr
    sys.stderr = buffer
    try:
        yield buffer
    finally:
        sys.stderr = stderr
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


@asynccontextmanager
async def remote_app(tmp_path: Path, url: str, **more: Any) -> AsyncIterator[tuple[App, Settings]]:
    settings = make_settings(tmp_path, engine_kind="remote", engine_urls=url, engine_health_interval_s=0.05,
                             engine_start_wait_s=5, engine_attempts=1, admin_ids=f"telegram:{OPERATOR}",
                             **more)
    configure_logging("DEBUG", settings.secrets())
    async with HearthBuilder(settings).gate(AllowAllGate()).build() as app:
        yield app, settings


async def status(app: App, author: str) -> str:
    return await app.commands.run(message("", f"s-{author}", ROOM, author=author, direct=False), "status")


async def test_a_key_the_servers_401_echoes_reaches_no_one(tmp_path: Path) -> None:
    fake = await FakeOpenAI(api_key=KEY, fail_status=401,
                            fail_message=f"Incorrect API key provided: {KEY}").start()
    try:
        with debug_log() as log:
            async with remote_app(tmp_path, fake.url, engine_api_key=KEY) as (app, _):
                reply = await app.commands.run(message("", "c0", ROOM), "help")
                adapter_texts = await answer(app, "hello")
                shown = await status(app, OPERATOR), await status(app, "stranger")
    finally:
        await fake.stop()

    assert adapter_texts == [i18n.text("engine_unavailable", "en")]
    assert "HTTP 401 Unauthorized" in log.getvalue(), "the log has the short reason"
    assert "engine:" in shown[0] and "engine:" not in shown[1], "engine details are for admins"
    for text in (*shown, *adapter_texts, reply, log.getvalue()):
        assert KEY not in text and KEY[:12] not in text
    assert "DEBUG" in log.getvalue()


async def test_a_proxys_password_in_the_url_is_never_shown_or_logged(tmp_path: Path) -> None:
    fake = await FakeOpenAI(basic=("hearth", PASSWORD)).start()
    url = f"http://hearth:{PASSWORD}@127.0.0.1:{fake.port}/v1"
    try:
        with debug_log() as log:
            async with remote_app(tmp_path, url) as (app, _):
                answered = await answer(app, "hello")
                up = await status(app, OPERATOR)
                await fake.stop()  # the server goes away: its error is shown too
                for _ in range(200):  # the next health check (every 0.05 s) sees it
                    if ": down" in (down := await status(app, OPERATOR)):
                        break
                    await asyncio.sleep(0.01)
    finally:
        await fake.stop()

    assert answered == ["hello from the fake"], "the credentials were sent, as Basic auth"
    assert f"replica http://127.0.0.1:{fake.port}/v1: up" in up
    assert f"replica http://127.0.0.1:{fake.port}/v1: down" in down
    for text in (up, down, log.getvalue()):
        assert PASSWORD not in text and "hearth:" + PASSWORD[:4] not in text
    assert "HTTP Request" in log.getvalue() or "DEBUG" in log.getvalue()


async def test_the_start_up_error_names_the_server_without_its_password() -> None:
    options = RemoteOptions((f"http://hearth:{PASSWORD}@127.0.0.1:9/v1",), start_wait_s=0.3)

    with pytest.raises(ModelLoadError) as caught:
        await RemoteEngine(options).start()

    assert "http://127.0.0.1:9/v1" in str(caught.value)
    assert PASSWORD not in str(caught.value)


async def answer(app: App, text: str) -> list[str]:
    from tests.fakes import RecordingAdapter

    adapter = RecordingAdapter()
    await app.pipeline.handle(message(text, "m1", ROOM), adapter)
    return adapter.texts(ROOM)
