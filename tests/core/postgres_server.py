"""The PostgreSQL server the store tests use, and a fresh schema on it per test.

`scripts/test-postgres.sh` starts one and prints its URL; `.ci/run` exports it as
HEARTH_TEST_DATABASE_URL. Without it the PostgreSQL tests are skipped, except
under CI, where a missing server fails them: CI must really run them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

URL_VARIABLE = "HEARTH_TEST_DATABASE_URL"
SKIP_REASON = (
    f"{URL_VARIABLE} is unset: no PostgreSQL server to test against "
    f"(url=$(scripts/test-postgres.sh) && export {URL_VARIABLE}=$url)"
)


def server_url() -> str:
    """The test server's URL; skips the test when there is none (fails it under CI)."""
    url = os.environ.get(URL_VARIABLE, "")
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail(f"{URL_VARIABLE} is unset under CI: .ci/run must start PostgreSQL", pytrace=False)
    pytest.skip(SKIP_REASON)


def with_search_path(url: str, schema: str) -> str:
    """`url` with its tables in `schema` (asyncpg makes unknown query keys server settings)."""
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query), ("search_path", schema)])
    return urlunsplit(parts._replace(query=query))


@asynccontextmanager
async def fresh_schema() -> AsyncIterator[str]:
    """A URL whose tables land in a new, empty schema, dropped with them afterwards."""
    url = server_url()
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(url, timeout=10)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        yield with_search_path(url, schema)
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()
