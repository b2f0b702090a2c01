"""Shared fixtures: settings on a temporary data dir, a core on the fake engine."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.core import Hearth
from bot.registry import Registry
from bot.settings import Settings, load_settings
from bot.store import SqliteStore
from engine.fake import FakeEngine
from tests.fakes import RecordingAdapter

TODAY = dt.date(2026, 11, 22)


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings that ignore any developer's .env and environment."""
    return load_settings(_env_file=None, data_dir=data_dir, **overrides)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, admin_ids="telegram:boss")


@pytest.fixture
def registry() -> Registry:
    return Registry.load()


@pytest.fixture
async def core(settings: Settings, registry: Registry) -> AsyncIterator[Hearth]:
    async with SqliteStore(settings.database) as store:
        engine = FakeEngine(registry.get("demo"))
        await engine.start()
        yield Hearth(settings, store, engine, registry, today=lambda: TODAY)


@pytest.fixture
def adapter() -> RecordingAdapter:
    return RecordingAdapter()
