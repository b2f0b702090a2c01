"""Keeping SQLite's WAL small: checkpoints that truncate it (passive ones on a connection
of their own; see `WalKeeper` for where a TRUNCATE runs).

A PASSIVE checkpoint copies what it can without making anyone wait, but it never
shrinks the WAL file, and under a steady flood it never catches up, so the WAL is
never started over and only grows (measured: 1.7 GB beside a 41 MB database after
20,000 answered messages). So `WalKeeper`:

- every `interval` (2 s): PASSIVE, as before, when something was committed since;
- when nothing was committed for an `interval` (idle), or at once when the file has
  passed `limit_bytes` (looked at every WAL_POLL_S): TRUNCATE, which copies the rest,
  waits for readers to leave the WAL (at most CHECKPOINT_BUSY_TIMEOUT) and cuts the
  file to zero bytes. New writes wait for it meanwhile (milliseconds for 16 MiB);
  after a TRUNCATE that could not finish, the next waits an `interval`.

The file therefore stays under `limit_bytes` plus what is written in one look
(README, Retention: the measured bound).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import aiosqlite

from bot.store.sqlite_schema import CHECKPOINT, DATA_VERSION, TRUNCATE_CHECKPOINT, WAL_LIMIT_BYTES, WAL_POLL_S

log = logging.getLogger(__name__)

Outcome = Literal["truncated", "passive", "busy", "none"]


WAL_LOOK_EVERY = 32  # commits on the event loop's thread between two looks at the WAL's size


def wal_path(database: Path) -> Path:
    """The WAL file SQLite keeps beside `database`."""
    return database.with_name(database.name + "-wal")


def wal_size(wal: Path) -> int:
    """The WAL file's size now (bytes); 0 when there is none. (A stat: microseconds.)"""
    try:
        return wal.stat().st_size
    except FileNotFoundError:
        return 0


class WalGauge:
    """Whether the WAL has passed its limit: looked at (a stat) every `every` calls, and at
    every call once it has, until it is back under.

    The store asks before it commits on the event loop's thread. A task that writes
    without ever yielding to the loop (a write committed there returns without waiting)
    would keep the `WalKeeper` task from running, and the WAL would grow without bound:
    measured, 1.6 GB while `scripts/store_sizes.py` wrote 20,000 messages so. Past the
    limit, writes go to the writer's thread, so their callers wait and the loop runs the
    keeper, which `over_limit` (when given) wakes at once."""

    def __init__(self, database: Path, limit_bytes: int, every: int = WAL_LOOK_EVERY) -> None:
        self._wal = wal_path(database)
        self._limit = limit_bytes
        self._every = every
        self._calls = 0
        self._over = False
        self.over_limit: Callable[[], None] | None = None

    def over(self) -> bool:
        """Whether the WAL is past `limit_bytes`, as last looked at; calls `over_limit` when
        a look first finds it so."""
        self._calls += 1
        if not self._over and self._calls % self._every:
            return False
        was, self._over = self._over, wal_size(self._wal) > self._limit
        if self._over and not was and self.over_limit is not None:
            self.over_limit()
        return self._over


class WalKeeper:
    """Checkpoints `db`'s database (a connection used for nothing else) as the module says.

    `truncate`, when given, runs the TRUNCATE checkpoint instead of `db` and returns its
    row: the store runs it on its writer's connection, because SQLite counts a WAL
    started over as a change in every other connection's `PRAGMA data_version`, which
    the store reads to learn that another process wrote (`bot.store.history_cache`).
    Writers wait for a TRUNCATE either way."""

    def __init__(
        self, db: aiosqlite.Connection, database: Path, limit_bytes: int = WAL_LIMIT_BYTES,
        truncate: Callable[[], Awaitable[Sequence[Any]]] | None = None,
    ) -> None:
        self._db = db
        self._truncate = truncate
        self._wal = wal_path(database)
        self._limit = limit_bytes
        self._version: int | None = None  # PRAGMA data_version at the last regular look
        self._quiet_until = 0.0  # monotonic: no TRUNCATE before this, after a busy one
        self._nudged = asyncio.Event()

    def wal_bytes(self) -> int:
        """The WAL file's size now; 0 when there is none. (A stat: microseconds.)"""
        return wal_size(self._wal)

    def nudge(self) -> None:
        """Look at the WAL now, not at the next poll (the WAL just passed its limit)."""
        self._nudged.set()

    async def look(self, regular: bool) -> Outcome:
        """One look at the WAL: truncate it when over the limit or (on a `regular` look,
        once an `interval`) idle, else a passive checkpoint on a regular look."""
        size = self.wal_bytes()
        if size == 0:
            return "none"
        idle = regular and await self._idle()
        if (size > self._limit or idle) and time.monotonic() >= self._quiet_until:
            return await self._checkpoint(TRUNCATE_CHECKPOINT, "truncated")
        if regular and not idle:
            return await self._checkpoint(CHECKPOINT, "passive")
        return "none"

    async def run(self, interval: float) -> None:
        """Look every WAL_POLL_S (or `interval`, when shorter), regularly every `interval`;
        until cancelled."""
        poll = min(WAL_POLL_S, interval)
        last = time.monotonic()
        while True:
            # (asyncio.timeout, not wait_for: 3.11's wait_for can swallow the cancel that
            # closes the store when the event is set at the same moment.)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll):
                    await self._nudged.wait()
            self._nudged.clear()
            regular = time.monotonic() - last >= interval - poll / 2
            if regular:
                last = time.monotonic()
            if await self.look(regular) == "busy":
                self._quiet_until = time.monotonic() + interval

    async def _idle(self) -> bool:
        """Whether no other connection committed since the last regular look."""
        rows = list(await self._db.execute_fetchall(DATA_VERSION))
        version, self._version = self._version, int(rows[0][0])
        return version == self._version

    async def _checkpoint(self, pragma: str, done: Outcome) -> Outcome:
        """Run a checkpoint PRAGMA; `done`, or "busy" when a reader or writer kept it from finishing."""
        try:
            if pragma == TRUNCATE_CHECKPOINT and self._truncate is not None:
                rows = list(await self._truncate())
            else:
                rows = list(await self._db.execute_fetchall(pragma))
        except sqlite3.OperationalError as exc:  # locked: try again at the next look
            log.debug("checkpoint skipped: %s", exc)
            return "busy"
        return "busy" if rows and rows[0][0] else done
