"""`hearth run`'s start-up checks: the data dir and the database, in seconds, before the
pid file, the platforms' tokens and the model (minutes).

Each problem is one line naming the setting (a `ConfigError`, printed by `hearth run`
as `hearth: …`, exit 2), never a traceback, never a password:

- HEARTH_DATA_DIR can be created and written to;
- SQLite (HEARTH_DB_PATH; unset: HEARTH_DATA_DIR/hearth.sqlite3): the path is no
  directory, its folder can be created, the file opens and is a database, passes
  `PRAGMA quick_check` (a damaged file is refused, naming how to restore it), and takes
  a write (rolled back) within LOCK_WAIT_S (else: "locked by another process");
- PostgreSQL (HEARTH_DATABASE_URL, shown as host:port/database only): the server
  answers within CONNECT_WAIT_S and takes writes.

`open_store` turns a failure of the store's own `open()` that the checks did not
foresee into the same kind of line.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from bot.app.settings import Settings
from bot.errors import ConfigError, StoreUnavailableError
from bot.store import Store
from bot.store.sqlite import SchemaTooNewError

LOCK_WAIT_S = 3.0  # a write lock held longer than this is another process's
CONNECT_WAIT_S = 5.0
REASON_CHARS = 200
POSTGRES_FAILURES = (OSError, TimeoutError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError)
OPEN_FAILURES = (*POSTGRES_FAILURES, sqlite3.Error, SchemaTooNewError, StoreUnavailableError)


async def check_startup(settings: Settings) -> None:
    """Check the data dir, then the database; raises ConfigError with the first problem
    (one line: a later check would only repeat it)."""
    problem = await asyncio.to_thread(check_data_dir, settings.data_dir)
    if problem is None:
        if settings.database_url is not None:
            problem = await check_postgres(settings.database_url.get_secret_value(), CONNECT_WAIT_S)
        else:
            problem = await asyncio.to_thread(
                check_sqlite, settings.database, database_setting(settings), LOCK_WAIT_S)
    if problem is not None:
        raise ConfigError([problem])


def check_data_dir(path: Path) -> str | None:
    """Create HEARTH_DATA_DIR if missing and write a file in it (removed at once); the
    problem, or None."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        return f"HEARTH_DATA_DIR: cannot use {path}: {exc.strerror or exc}"
    return None


def check_sqlite(path: Path, setting: str, lock_wait_s: float) -> str | None:
    """Whether the SQLite file at `path` can serve (see the module docstring); the problem,
    naming `setting`, or None. Blocks for up to `lock_wait_s` on a locked file."""
    if path.is_dir():
        return f"{setting}: {path} is a directory; name a file in it, e.g. {path / 'hearth.sqlite3'}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"{setting}: cannot create the folder of {path}: {exc.strerror or exc}"
    try:
        with closing(sqlite3.connect(path, timeout=lock_wait_s, isolation_level=None)) as db:
            found = [str(row[0]) for row in db.execute("PRAGMA quick_check")]
            if found != ["ok"]:
                return damaged(setting, path, quick_check_summary(found))
            _try_a_write(db)
    except sqlite3.Error as exc:
        return sqlite_problem(setting, path, exc, lock_wait_s)
    return None


def _try_a_write(db: sqlite3.Connection) -> None:
    """Take the write lock and write (the schema version, unchanged), then roll back. In WAL
    mode BEGIN IMMEDIATE alone succeeds on a read-only file: only a write tells."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        db.execute(f"PRAGMA user_version = {version:d}")
    finally:
        db.execute("ROLLBACK")


def sqlite_problem(setting: str, path: Path, exc: sqlite3.Error, lock_wait_s: float = LOCK_WAIT_S) -> str:
    """One line for an SQLite error about the file at `path`, by its result code."""
    code = getattr(exc, "sqlite_errorname", "")
    reason = _first_line(exc)
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return (f"{setting}: {path} is locked by another process (waited {lock_wait_s:.0f} s); "
                "stop it, or give this Hearth a file of its own")
    if code.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or code == "SQLITE_IOERR_SHORT_READ":
        return damaged(setting, path, reason)
    if code.startswith("SQLITE_READONLY"):
        return f"{setting}: {path} is read-only ({reason}); Hearth needs to write it and its folder"
    if code.startswith("SQLITE_CANTOPEN"):
        return f"{setting}: cannot open {path} ({reason}); Hearth needs to write it and its folder"
    return f"{setting}: cannot use {path}: {reason}"


def quick_check_summary(found: list[str]) -> str:
    """`PRAGMA quick_check`'s rows (lines, headed "*** in database main ***") in a few words."""
    problems = [line for row in found for line in row.splitlines() if line and not line.startswith("***")]
    more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
    return f"quick_check: {problems[0] if problems else found[0]}{more}"[:REASON_CHARS]


def damaged(setting: str, path: Path, detail: str) -> str:
    """The one line for a damaged SQLite file: what was found, and the ways back."""
    return (f"{setting}: {path} is damaged ({detail}); Hearth will not start on it. Restore it "
            f"from a backup, or salvage it: `sqlite3 {path} .recover | sqlite3 recovered.sqlite3`, "
            f"then put recovered.sqlite3 in its place; or move it (and its -wal file) away to start afresh")


async def check_postgres(url: str, wait_s: float) -> str | None:
    """Whether PostgreSQL at `url` answers within `wait_s` and takes writes; the problem
    (naming host:port/database, never the password), or None."""
    place = postgres_place(url)
    try:
        db = await asyncpg.connect(url, timeout=wait_s)
        try:
            read_only = await db.fetchval("SHOW transaction_read_only", timeout=wait_s) == "on"
        finally:
            await db.close(timeout=wait_s)
    except POSTGRES_FAILURES as exc:
        return f"HEARTH_DATABASE_URL: cannot reach PostgreSQL at {place}: {scrubbed(exc, url)}"
    if read_only:
        return f"HEARTH_DATABASE_URL: PostgreSQL at {place} is read-only (a standby?); Hearth needs to write"
    return None


async def open_store(store: Store, settings: Settings) -> None:
    """`store.open()`; a failure becomes ConfigError, one line naming the setting."""
    try:
        await store.open()
    except OPEN_FAILURES as exc:
        setting = database_setting(settings)
        if isinstance(exc, sqlite3.Error) and settings.database_url is None:
            raise ConfigError([sqlite_problem(setting, settings.database, exc)]) from None
        url = settings.database_url.get_secret_value() if settings.database_url else ""
        place = postgres_place(url) if url else str(settings.database)
        raise ConfigError([f"{setting}: cannot open the database at {place}: {scrubbed(exc, url)}"]) from None


def database_setting(settings: Settings) -> str:
    """The setting that names the database in use."""
    if settings.database_url is not None:
        return "HEARTH_DATABASE_URL"
    return "HEARTH_DB_PATH" if settings.db_path is not None else "HEARTH_DATA_DIR"


def postgres_place(url: str) -> str:
    """host:port/database of a PostgreSQL URL: what may be shown of it."""
    parts = urlsplit(url)
    port: int | str
    try:
        port = parts.port or 5432
    except ValueError:  # not a number: the URL is shown no further
        port = "?"
    return f"{parts.hostname or 'localhost'}:{port}/{parts.path.lstrip('/') or parts.username or ''}"


def scrubbed(exc: BaseException, url: str) -> str:
    """The first line of an error, without the URL or its password in it."""
    text = _first_line(exc)
    password = urlsplit(url).password if url else None
    for secret in (url, password):
        if secret:
            text = text.replace(secret, "***")
    return text


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip() or type(exc).__name__).splitlines()[0][:REASON_CHARS]
