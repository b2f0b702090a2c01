"""What this machine can do at all, measured beside Hearth in the same run.

- `sqlite_insert_rate`: bare sqlite3 inserts of one message each (autocommit, WAL,
  Hearth's pragmas and schema): the most any SQLite store could store one by one. The
  WAL is never checkpointed there (Hearth's pragmas turn SQLite's own checkpoints off),
  so it grows without bound; `checkpointed=True` measures the same with SQLite's default
  checkpoints (`wal_autocheckpoint = 1000` pages): what a store pays that keeps its WAL
  bounded, as Hearth's must (issue 19: the WAL had reached 330 MB). `statements=True`
  measures plain sqlite3 running the statements the store runs for one message
  (`BEGIN IMMEDIATE`, `PRAGMA data_version`, the insert, `COMMIT`; see
  `bot.store.sqlite_threads`), never checkpointed: the store's own SQL, so that
  `store_vs_its_statements` is the share the store's Python (and its WAL bound) leaves.
- `store_insert_rates`: `SqliteStore.add_message` on the same schema, one at a time and
  from many tasks at once (where group commit shares transactions).
- `task_rate`: `asyncio` creating and awaiting a task that does nothing: what one
  message's task costs before it does anything.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from bot.messages import ConversationKey
from bot.store import SqliteStore
from bot.store.sqlite_schema import DATA_VERSION, MIGRATIONS, PRAGMAS
from bot.store.statements import INSERT_CONVERSATION, INSERT_MESSAGE

KEY = ConversationKey("bench", "limits")


@dataclass(frozen=True, slots=True)
class Limits:
    """Per second, measured in this run."""

    sqlite_inserts_per_s: float
    sqlite_checkpointed_inserts_per_s: float  # the same, with SQLite's default checkpoints
    sqlite_statements_inserts_per_s: float  # the store's statements for one message, in plain sqlite3
    store_inserts_per_s: float  # add_message one after another
    store_concurrent_inserts_per_s: float  # add_message from `concurrency` tasks at once
    tasks_per_s: float

    def to_json(self) -> dict[str, float]:
        bare, checkpointed = self.sqlite_inserts_per_s, self.sqlite_checkpointed_inserts_per_s
        statements = self.sqlite_statements_inserts_per_s
        return {
            "sqlite_inserts_per_s": round(self.sqlite_inserts_per_s),
            "sqlite_checkpointed_inserts_per_s": round(self.sqlite_checkpointed_inserts_per_s),
            "sqlite_statements_inserts_per_s": round(self.sqlite_statements_inserts_per_s),
            "store_inserts_per_s": round(self.store_inserts_per_s),
            "store_concurrent_inserts_per_s": round(self.store_concurrent_inserts_per_s),
            "store_vs_sqlite": round(self.store_inserts_per_s / bare, 3),
            "store_vs_checkpointed_sqlite": round(self.store_inserts_per_s / checkpointed, 3),
            "store_vs_its_statements": round(self.store_inserts_per_s / statements, 3),
            "store_concurrent_vs_sqlite": round(self.store_concurrent_inserts_per_s / bare, 3),
            "tasks_per_s": round(self.tasks_per_s),
        }


async def measure_limits(directory: Path, inserts: int = 2000, concurrency: int = 100) -> Limits:
    """Each limit on a fresh file in `directory`."""
    bare = await asyncio.to_thread(sqlite_insert_rate, directory / "bare.sqlite3", inserts)
    checkpointed = await asyncio.to_thread(sqlite_insert_rate, directory / "checkpointed.sqlite3", inserts,
                                           checkpointed=True)
    statements = await asyncio.to_thread(sqlite_insert_rate, directory / "statements.sqlite3", inserts,
                                         statements=True)
    one, many = await store_insert_rates(directory / "store.sqlite3", inserts, concurrency)
    return Limits(bare, checkpointed, statements, one, many, await task_rate(inserts * 10))


def sqlite_insert_rate(
    path: Path, inserts: int, *, checkpointed: bool = False, statements: bool = False
) -> float:
    """Messages inserted per second by plain sqlite3, each its own transaction; with
    SQLite's default WAL checkpoints when `checkpointed`; in the store's own statements
    when `statements` (see the module docstring)."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in (*PRAGMAS, *(["PRAGMA wal_autocheckpoint = 1000"] if checkpointed else [])):
            db.execute(pragma).fetchall()
        for script in MIGRATIONS:
            db.executescript(script)
        db.execute(INSERT_CONVERSATION, (*_key(), time.time()))
        started = time.perf_counter()
        if statements:
            for n in range(inserts):
                db.execute("BEGIN IMMEDIATE")
                db.execute(DATA_VERSION).fetchone()
                db.execute(INSERT_MESSAGE, _row(n)).fetchone()
                db.execute("COMMIT")
        else:
            for n in range(inserts):
                db.execute(INSERT_MESSAGE, _row(n)).fetchall()
        return inserts / (time.perf_counter() - started)
    finally:
        db.close()


async def store_insert_rates(path: Path, inserts: int, concurrency: int) -> tuple[float, float]:
    """`SqliteStore.add_message` per second: one at a time, then `concurrency` tasks at once."""
    async with SqliteStore(path) as store:
        await store.add_message(KEY, "user", "warm-up", platform_message_id="warm")
        started = time.perf_counter()
        for n in range(inserts):
            await store.add_message(KEY, "user", f"message {n}", platform_message_id=f"s{n}")
        one = inserts / (time.perf_counter() - started)

        async def writer(w: int) -> None:
            for n in range(w, inserts, concurrency):
                await store.add_message(KEY, "user", f"message {n}", platform_message_id=f"c{n}")

        started = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(concurrency)))
        return one, inserts / (time.perf_counter() - started)


async def task_rate(tasks: int) -> float:
    """Tasks created and awaited per second, one after another."""

    async def nothing() -> None:
        return None

    started = time.perf_counter()
    for _ in range(tasks):
        await asyncio.create_task(nothing())
    return tasks / (time.perf_counter() - started)


def _key() -> tuple[str, str, str]:
    return (KEY.platform, KEY.channel, KEY.thread)


def _row(n: int) -> tuple[object, ...]:
    """One user message, in INSERT_MESSAGE's column order (conversation 1)."""
    return (1, "user", "u", "user", f"message {n}", time.time(), f"b{n}",
            0, 0, 0, None, "pending", None, None)
