"""Fixtures of the Telegram tests: a fake Bot API, settings pointing at it, Hearth on a held engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.telegram import TelegramAdapter, TelegramConfig
from bot.app.builder import App
from bot.app.platforms import telegram_config
from bot.app.settings import Settings
from engine.registry import Registry
from tests.adapters.telegram.fake_telegram import FakeTelegram, running
from tests.adapters.telegram.harness import LISTED, HeldEngine, adapter_for, serving
from tests.conftest import make_settings


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with running() as fake:
        yield fake
        assert fake.errors == [], "the adapter made calls Telegram would reject"


@pytest.fixture
def settings(tmp_path: Path, fake: FakeTelegram) -> Settings:
    """Overrides the shared fixture, so the shared `app` fixture is built on these settings."""
    return make_settings(tmp_path, admin_ids=f"telegram:{LISTED.id}", telegram_token=fake.token,
                         telegram_base_url=fake.base_url)


@pytest.fixture
def engine(registry: Registry) -> HeldEngine:
    """Overrides the shared fixture: the engine the shared `app` fixture is built on."""
    return HeldEngine(registry.get("demo"))


@pytest.fixture
def config(settings: Settings) -> TelegramConfig:
    """The adapter's config, made from the settings as `hearth run` makes it."""
    return telegram_config(settings)


@pytest.fixture
async def telegram(app: App, config: TelegramConfig, fake: FakeTelegram) -> AsyncIterator[TelegramAdapter]:
    async with serving(adapter_for(app, config), fake) as adapter:
        yield adapter

