"""Hearth built with HEARTH_ENGINE_KIND=remote: settings, the builder, the pipeline's conversation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bot import i18n
from bot.app.builder import App, HearthBuilder
from bot.app.settings import Settings
from bot.errors import ConfigError
from bot.messages import ConversationKey
from bot.moderation import AllowAllGate
from engine.affinity import session_id
from engine.remote import RemoteEngine
from tests.conftest import make_settings
from tests.engine.fake_openai import FakeOpenAI
from tests.fakes import RecordingAdapter, message

ROOM = ConversationKey("telegram", "room")


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    server = await FakeOpenAI().start()
    yield server
    await server.stop()
    assert server.unexpected == []


def remote_settings(tmp_path: Path, *urls: str, **more: Any) -> Settings:
    return make_settings(tmp_path, engine_kind="remote", engine_urls=",".join(urls),
                         engine_health_interval_s=0.05, engine_start_wait_s=5, **more)


@asynccontextmanager
async def remote_app(settings: Settings) -> AsyncIterator[App]:
    async with HearthBuilder(settings).gate(AllowAllGate()).build() as app:
        yield app


async def test_the_builder_connects_to_the_servers_model(tmp_path: Path, fake: FakeOpenAI) -> None:
    async with remote_app(remote_settings(tmp_path, fake.url, engine_api_key="k")) as app:
        assert isinstance(app.engine, RemoteEngine)
        assert app.engine.spec.name == "demo" and app.models.stats().state == "ready"


async def test_a_message_is_answered_with_its_conversation_hashed(tmp_path: Path, fake: FakeOpenAI) -> None:
    adapter = RecordingAdapter()
    async with remote_app(remote_settings(tmp_path, fake.url)) as app:
        await app.pipeline.handle(message("hello", "1", ROOM), adapter)

    assert adapter.texts(ROOM) == ["hello from the fake"]
    [seen] = fake.chats
    assert seen.headers["x-session-id"] == seen.body["user"] == session_id(str(ROOM))


async def test_when_no_replica_answers_the_user_gets_the_apology(tmp_path: Path, fake: FakeOpenAI) -> None:
    adapter = RecordingAdapter()
    async with remote_app(remote_settings(tmp_path, fake.url, engine_attempts=2)) as app:
        fake.fail_status = 503
        await app.pipeline.handle(message("hello", "1", ROOM), adapter)

    assert adapter.texts(ROOM) == [i18n.text("engine_unavailable", "en")]
    assert len(fake.chats) == 2


def test_remote_without_urls_is_a_clear_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"HEARTH_ENGINE_URLS: .*needs at least one URL"):
        make_settings(tmp_path, engine_kind="remote")


def test_engine_urls_are_split_and_checked(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, engine_urls="http://a:8000/v1, http://b:8000/v1")
    assert settings.engine_urls == ("http://a:8000/v1", "http://b:8000/v1")
    with pytest.raises(ConfigError, match="HEARTH_ENGINE_URLS"):
        make_settings(tmp_path, engine_urls="gpu-a:8000")


def test_the_api_key_is_a_secret(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, engine_api_key="sesame")
    assert "sesame" not in repr(settings)
    assert any(s.get_secret_value() == "sesame" for s in settings.secrets())
