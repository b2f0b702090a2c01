"""The `store` fixture: each storage-contract test runs against every implementation.

PostgreSQL's cases need a server (see tests/core/postgres_server.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import pytest_asyncio

from bot.store import MemoryStore, PostgresStore, SqliteStore, Store
from tests.core.postgres_server import fresh_schema


@pytest_asyncio.fixture(params=["sqlite", "memory", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with AsyncExitStack() as stack:
        implementation: Store
        if request.param == "memory":
            implementation = MemoryStore()
        elif request.param == "sqlite":
            implementation = SqliteStore(tmp_path / "db")
        else:  # a schema of its own on the test server, dropped after the store closes
            implementation = PostgresStore(await stack.enter_async_context(fresh_schema()))
        await implementation.open()  # the Store protocol names open/close, not __aenter__
        try:
            yield implementation
        finally:
            await implementation.close()
