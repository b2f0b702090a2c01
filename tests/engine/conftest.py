"""One real vLLM engine, on the offline demo model, shared by the whole session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.registry import Registry
from engine.models import ModelResolver
from engine.vllm_engine import EngineOptions, VllmEngine

KV_CACHE_GIB = 0.25


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with both demo models already built, shared with subprocesses."""
    path = tmp_path_factory.mktemp("hearth-data")
    resolve = ModelResolver(path)
    registry = Registry.load()
    for name in ("demo", "demo-awq"):
        resolve(registry.get(name))
    return path


@pytest.fixture(scope="session")
async def real_engine(data_dir: Path) -> AsyncIterator[VllmEngine]:
    engine = VllmEngine(
        Registry.load().get("demo"), ModelResolver(data_dir), EngineOptions(kv_cache_gib=KV_CACHE_GIB)
    )
    async with engine:
        yield engine
