"""A database `hearth run` cannot use stops it within seconds, before the model loads:
exactly one line naming the setting, no traceback, no password, a non-zero exit.

The real `hearth run` process on real files; no engine is needed (the checks run first)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sqlite3
import time
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

import pytest

from tests.app.databases import build_database, corrupt_one_page, truncate
from tests.app.process import HearthProcess, hearth_env

pytestmark = pytest.mark.asyncio

WITHIN_S = 15.0  # the promise is seconds: Python's start-up, the checks, a 3 s lock wait
PASSWORD = "n0t-for-logs"
# As root, file modes bind only without these capabilities (see test_a_read_only_database).
WITHOUT_OVERRIDE = ("setpriv", "--bounding-set=-dac_override,-dac_read_search")


async def refused(tmp_path: Path, db: Path, prefix: Sequence[str] = (), **settings: str) -> str:
    """Run `hearth run` on `db`; check it stops as promised; its one error line."""
    env = hearth_env(tmp_path / "data", db, **settings)
    process = HearthProcess(tmp_path, env, prefix)
    started = time.monotonic()
    await process.start()
    try:
        code = await process.wait(WITHIN_S)
    finally:
        process.ensure_gone()
    elapsed, log = time.monotonic() - started, process.tail(400)
    assert code != 0, log
    assert elapsed < WITHIN_S
    assert "Traceback" not in log and "loading model" not in log, log
    [line] = [line for line in process.log if line.startswith("hearth: ")]
    assert not any(" ERROR " in other for other in process.log), "the one line says it all"
    return line.strip()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def file_modes_bind() -> bool:
    """Whether a read-only file stops this user's writes (not so for root)."""
    return os.geteuid() != 0


async def test_a_directory_as_the_database(tmp_path: Path) -> None:
    line = await refused(tmp_path, tmp_path)
    assert line.startswith(f"hearth: HEARTH_DB_PATH: {tmp_path} is a directory")


async def test_a_truncated_database(tmp_path: Path) -> None:
    db = await asyncio.to_thread(build_database, tmp_path / "hearth.sqlite3")
    truncate(db)
    line = await refused(tmp_path, db)
    assert line.startswith(f"hearth: HEARTH_DB_PATH: {db} is damaged (")


async def test_a_database_with_one_corrupt_page(tmp_path: Path) -> None:
    db = await asyncio.to_thread(build_database, tmp_path / "hearth.sqlite3")
    await asyncio.to_thread(corrupt_one_page, db)
    line = await refused(tmp_path, db)
    assert line.startswith(f"hearth: HEARTH_DB_PATH: {db} is damaged (quick_check: ")
    assert "backup" in line and ".recover" in line and "move it" in line


async def test_a_read_only_database(tmp_path: Path) -> None:
    folder = tmp_path / "read-only"
    db = await asyncio.to_thread(build_database, folder / "hearth.sqlite3")
    prefix: tuple[str, ...] = ()
    if not file_modes_bind():
        if shutil.which(WITHOUT_OVERRIDE[0]) is None:
            pytest.skip("running as root, where file modes do not stop writes, and setpriv is missing")
        prefix = WITHOUT_OVERRIDE
    db.chmod(0o444)
    folder.chmod(0o555)
    try:
        line = await refused(tmp_path, db, prefix)
    finally:
        folder.chmod(0o755)
    assert line.startswith(f"hearth: HEARTH_DB_PATH: {db} is read-only")


async def test_a_database_locked_by_another_process(tmp_path: Path) -> None:
    db = await asyncio.to_thread(build_database, tmp_path / "hearth.sqlite3")
    with closing(sqlite3.connect(db, isolation_level=None)) as holder:
        holder.execute("BEGIN EXCLUSIVE")
        line = await refused(tmp_path, db)
    assert line.startswith(f"hearth: HEARTH_DB_PATH: {db} is locked by another process")


async def test_an_unreachable_postgres(tmp_path: Path) -> None:
    port = closed_port()
    url = f"postgresql://hearth:{PASSWORD}@127.0.0.1:{port}/hearth"
    line = await refused(tmp_path, tmp_path / "unused.sqlite3", database_url=url)
    assert line.startswith(f"hearth: HEARTH_DATABASE_URL: cannot reach PostgreSQL at 127.0.0.1:{port}/hearth")
    assert PASSWORD not in line
