"""The start-up checks one by one (`bot.app.checks`): each problem one line naming the
setting, never a password; `open_store` likewise for a store's own open()."""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.app.checks import (
    check_data_dir,
    check_postgres,
    check_sqlite,
    check_startup,
    database_setting,
    open_store,
    postgres_place,
    scrubbed,
    sqlite_problem,
)
from bot.app.settings import Settings
from bot.errors import ConfigError
from bot.store import PostgresStore, SqliteStore
from bot.store.sqlite_schema import MIGRATIONS
from tests.app.databases import build_database, corrupt_one_page, truncate
from tests.conftest import make_settings
from tests.core.postgres_server import server_url

SETTING = "HEARTH_DB_PATH"
PASSWORD = "s3cret-Pa55"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def unreachable_url() -> str:
    return f"postgresql://hearth:{PASSWORD}@127.0.0.1:{closed_port()}/hearth"


def as_root() -> bool:
    return os.geteuid() == 0


# HEARTH_DATA_DIR


def test_a_missing_data_dir_is_created(tmp_path: Path) -> None:
    assert check_data_dir(tmp_path / "a" / "b") is None
    assert (tmp_path / "a" / "b").is_dir()


def test_a_file_in_the_way_of_the_data_dir_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    problem = check_data_dir(tmp_path / "file" / "data")
    assert problem == f"HEARTH_DATA_DIR: cannot use {tmp_path / 'file' / 'data'}: Not a directory"


# SQLite


def test_a_new_database_file_passes(tmp_path: Path) -> None:
    assert check_sqlite(tmp_path / "new" / "hearth.sqlite3", SETTING, 1.0) is None


def test_a_sound_hearth_database_passes(tmp_path: Path) -> None:
    assert check_sqlite(build_database(tmp_path / "hearth.sqlite3"), SETTING, 1.0) is None


def test_a_directory_as_the_database_is_named(tmp_path: Path) -> None:
    problem = check_sqlite(tmp_path, SETTING, 1.0)
    assert problem == (f"HEARTH_DB_PATH: {tmp_path} is a directory; name a file in it, "
                       f"e.g. {tmp_path}/hearth.sqlite3")


def test_a_file_with_one_corrupt_page_is_refused_with_the_ways_back(tmp_path: Path) -> None:
    path = build_database(tmp_path / "hearth.sqlite3")
    corrupt_one_page(path)
    problem = check_sqlite(path, SETTING, 1.0)
    assert problem is not None and "\n" not in problem
    assert problem.startswith(f"HEARTH_DB_PATH: {path} is damaged (quick_check: ")
    assert "backup" in problem and f"sqlite3 {path} .recover" in problem and "move it" in problem


def test_a_truncated_file_is_damaged(tmp_path: Path) -> None:
    path = build_database(tmp_path / "hearth.sqlite3")
    truncate(path)
    assert f"{path} is damaged (" in (check_sqlite(path, SETTING, 1.0) or "")


def test_a_file_that_is_no_database_is_damaged(tmp_path: Path) -> None:
    path = tmp_path / "hearth.sqlite3"
    path.write_text("not a database, just some text " * 20)
    assert f"{path} is damaged (file is not a database)" in (check_sqlite(path, SETTING, 1.0) or "")


def test_a_locked_file_is_named_within_the_wait(tmp_path: Path) -> None:
    path = build_database(tmp_path / "hearth.sqlite3")
    with closing(sqlite3.connect(path, isolation_level=None)) as holder:
        holder.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        problem = check_sqlite(path, SETTING, 0.5)
        waited = time.monotonic() - started
    assert problem is not None and problem.startswith(f"HEARTH_DB_PATH: {path} is locked by another process")
    assert waited < 3.0


def test_a_read_only_database_error_is_named(tmp_path: Path) -> None:
    """SQLite's own READONLY error (a read-only file, as root too: opened read-only)."""
    path = build_database(tmp_path / "hearth.sqlite3")
    read_only = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    with closing(read_only) as db, pytest.raises(sqlite3.OperationalError) as raised:
        db.execute("BEGIN IMMEDIATE")
        db.execute("CREATE TABLE t (x)")
    assert sqlite_problem(SETTING, path, raised.value).startswith(f"HEARTH_DB_PATH: {path} is read-only")


@pytest.mark.skipif(as_root(), reason="root writes a file whatever its mode; "
                    "tests/app/test_startup_checks.py drops root's override instead")
def test_a_read_only_file_is_named(tmp_path: Path) -> None:
    path = build_database(tmp_path / "hearth.sqlite3")
    path.chmod(0o444)
    assert f"{path} is read-only" in (check_sqlite(path, SETTING, 1.0) or "")


# PostgreSQL


async def test_an_unreachable_postgres_is_named_without_its_password() -> None:
    url = unreachable_url()
    started = time.monotonic()
    problem = await check_postgres(url, 2.0)
    assert problem is not None
    assert problem.startswith(f"HEARTH_DATABASE_URL: cannot reach PostgreSQL at {postgres_place(url)}: ")
    assert PASSWORD not in problem and "\n" not in problem
    assert time.monotonic() - started < 5.0


async def test_a_reachable_postgres_passes() -> None:
    assert await check_postgres(server_url(), 5.0) is None


def test_a_postgres_url_is_shown_as_host_port_and_database_only() -> None:
    assert postgres_place(f"postgresql://hearth:{PASSWORD}@db.example:6543/bot?sslmode=require") == \
        "db.example:6543/bot"
    assert postgres_place("postgresql://hearth@localhost/hearth") == "localhost:5432/hearth"


def test_an_error_is_scrubbed_of_the_url_and_its_password() -> None:
    url = unreachable_url()
    assert scrubbed(ValueError(f"bad {url} and {PASSWORD}"), url) == "bad *** and ***"


# Whole start-up, and the store's own open()


def settings_for(tmp_path: Path, data_dir: Path | None = None, **overrides: object) -> Settings:
    return make_settings(data_dir or tmp_path / "data", **overrides)


async def test_check_startup_stops_at_the_first_problem(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    settings = settings_for(tmp_path, data_dir=tmp_path / "file" / "data")  # the database is under it too
    with pytest.raises(ConfigError) as raised:
        await check_startup(settings)
    [problem] = raised.value.problems
    assert problem.startswith("HEARTH_DATA_DIR: ")


async def test_check_startup_passes_a_fresh_data_dir(tmp_path: Path) -> None:
    await check_startup(settings_for(tmp_path))


def test_the_setting_named_is_the_one_in_use(tmp_path: Path) -> None:
    assert database_setting(settings_for(tmp_path)) == "HEARTH_DATA_DIR"
    assert database_setting(settings_for(tmp_path, db_path=tmp_path / "x.sqlite3")) == "HEARTH_DB_PATH"
    url = SecretStr(unreachable_url())
    assert database_setting(settings_for(tmp_path, database_url=url)) == "HEARTH_DATABASE_URL"


async def test_a_sqlite_store_that_will_not_open_is_one_line(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, db_path=tmp_path)  # a directory
    with pytest.raises(ConfigError) as raised:
        await open_store(SqliteStore(settings.database), settings)
    [problem] = raised.value.problems
    assert problem.startswith(f"HEARTH_DB_PATH: cannot open {tmp_path}")


async def test_a_postgres_store_that_will_not_open_is_one_line_without_the_password(tmp_path: Path) -> None:
    url = unreachable_url()
    settings = settings_for(tmp_path, database_url=SecretStr(url))
    with pytest.raises(ConfigError) as raised:
        await open_store(PostgresStore(url), settings)
    [problem] = raised.value.problems
    assert problem.startswith(f"HEARTH_DATABASE_URL: cannot open the database at {postgres_place(url)}: ")
    assert PASSWORD not in problem


async def test_a_database_from_a_newer_hearth_is_one_line(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, db_path=tmp_path / "hearth.sqlite3")
    async with SqliteStore(settings.database):
        pass
    older = SqliteStore(settings.database, migrations=MIGRATIONS[:-1])
    with pytest.raises(ConfigError) as raised:
        await open_store(older, settings)
    [problem] = raised.value.problems
    assert problem == (f"HEARTH_DB_PATH: cannot open the database at {settings.database}: "
                       f"database schema version {len(MIGRATIONS)} is newer than {len(MIGRATIONS) - 1}")
