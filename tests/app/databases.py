"""Real SQLite files for the start-up checks' tests: a Hearth database, then damaged."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

from bot.store import SqliteStore

MESSAGES = 400
DAMAGE = b"\xff" * 64


def build_database(path: Path, messages: int = MESSAGES) -> Path:
    """A Hearth database at `path` (migrated by SqliteStore) holding `messages` messages,
    its WAL folded in; `path`."""
    asyncio.run(_migrate(path))
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("INSERT INTO conversations (platform, channel, created_at) VALUES ('telegram', '-1', 0)")
        db.executemany(
            "INSERT INTO messages (conversation_id, role, text, created_at) VALUES (1, 'user', ?, 0)",
            [(f"message number {n} " * 6,) for n in range(messages)])
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def quick_check(path: Path) -> list[str]:
    """`PRAGMA quick_check`'s rows; a damage SQLite stops at first is its error, one row."""
    try:
        with closing(sqlite3.connect(path)) as db:
            return [str(row[0]) for row in db.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]


def corrupt_one_page(path: Path) -> int:
    """Overwrite 64 bytes in the middle of one of the messages table's pages, the first
    whose damage `quick_check` sees (damage in a text alone goes unseen); its number."""
    with closing(sqlite3.connect(path)) as db:
        page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
        pages = [int(row[0]) for row in db.execute(
            "SELECT pageno FROM dbstat WHERE name = 'messages' AND pagetype = 'leaf' ORDER BY pageno")]
    for page in pages[len(pages) // 2:]:
        offset = (page - 1) * page_size + page_size // 2
        original = _overwrite(path, offset, DAMAGE)
        if quick_check(path) != ["ok"]:
            return page
        _overwrite(path, offset, original)
    raise AssertionError(f"no page of {path} could be damaged visibly")


def truncate(path: Path) -> None:
    """Cut the file to half its size, as a full disk or an interrupted copy would."""
    with path.open("r+b") as file:
        file.truncate(path.stat().st_size // 2)


async def _migrate(path: Path) -> None:
    async with SqliteStore(path):
        pass


def _overwrite(path: Path, offset: int, data: bytes) -> bytes:
    """Write `data` at `offset`; the bytes it replaced."""
    with path.open("r+b") as file:
        file.seek(offset)
        original = file.read(len(data))
        file.seek(offset)
        file.write(data)
    return original
