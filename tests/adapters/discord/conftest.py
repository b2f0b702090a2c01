"""The `hearth` fixture: Hearth serving a fresh fake Discord."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.registry import Registry
from tests.adapters.discord.harness import Running, running


@pytest.fixture
async def hearth(tmp_path: Path, registry: Registry) -> AsyncIterator[Running]:
    async with running(tmp_path, registry) as env:
        yield env
