"""Keeping SQLite's WAL small: passive checkpoints on a connection of their own, and a
restart of the WAL (or a truncation, when idle) on the writer's (see `WalKeeper`).

A PASSIVE checkpoint copies what it can without making anyone wait, but it never
shrinks the WAL file, and under a steady flood it never catches up, so the WAL is
never started over and only grows (measured: 1.7 GB beside a 41 MB database after
20,000 answered messages). So `WalKeeper`:

- every `interval` (2 s): PASSIVE, as before, when something was committed since;
- when nothing was committed for an `interval` (idle): TRUNCATE, which copies the
  rest, waits for readers to leave the WAL (at most CHECKPOINT_BUSY_TIMEOUT) and cuts
  the file to zero bytes;
- at once when the file has passed `limit_bytes` (looked at every WAL_POLL_S, and by
  `WalGauge` every WAL_LOOK_EVERY commits): a PASSIVE on the checkpointer's own
  connection first, which does the slow part (syncing the WAL's megabytes to disk,
  copying its pages) while writers go on, then RESTART on the writer's, which copies
  only what was written meanwhile and makes the next write start the file over from
  its beginning, so the file stops growing. Writers wait for that second part only.
  Measured at 16 MiB: a TRUNCATE alone held writers up 18-22 ms, the PASSIVE then
  RESTART 0.7-0.9 ms (a TRUNCATE after the PASSIVE, 5 ms: freeing and allocating
  the file's blocks again). After a checkpoint that could not finish, the next waits
  an `interval`.

The file therefore stays under `limit_bytes` plus what is written while the passive
checkpoints catch up, and never much past RUNAWAY times the limit (what one look lets
through beyond it): README, Retention, gives the measured bound. A restarted WAL keeps
its file (SQLite cuts it back to `journal_size_limit`, the same limit, at the next
commit) until idle.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

from bot.store.sqlite_schema import (
    CHECKPOINT,
    DATA_VERSION,
    RESTART_CHECKPOINT,
    TRUNCATE_CHECKPOINT,
    WAL_LIMIT_BYTES,
    WAL_POLL_S,
)
from bot.store.sqlite_threads import SqliteThread

log = logging.getLogger(__name__)

Outcome = Literal["truncated", "restarted", "passive", "busy", "none"]
Checkpoint = Callable[[str], Awaitable[list[Any]]]  # runs a checkpoint PRAGMA on the writer's connection

WAL_LOOK_EVERY = 32  # commits on the event loop's thread between two looks at the WAL's size
RUNAWAY = 1.5  # times `limit_bytes` past which writes wait for the restart whatever else runs
# Before a restart, PASSIVE checkpoints follow each other (at most CATCH_UP_PASSES) until
# less than 1/CATCH_UP_TAIL of the limit was written while the last one ran: that much is
# what the RESTART copies and syncs with writers waiting (16 MiB's first PASSIVE took
# 15-18 ms here, time enough for writers to add 7 MB, a 4.5 ms RESTART).
CATCH_UP_TAIL = 8
CATCH_UP_PASSES = 4


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
    """Whether writes should wait for the WAL to be restarted, looked at (a stat) every
    `every` calls, and at every call while they wait.

    The store asks before it commits on the event loop's thread. A task that writes
    without ever yielding to the loop (a write committed there returns without waiting)
    would keep the `WalKeeper` task from running, and the WAL would grow without bound:
    measured, 1.6 GB while `scripts/store_sizes.py` wrote 20,000 messages so. Past the
    limit, `over_limit(size)` (the keeper's `past_limit`, when given) says whether to
    wait: writes then go to the writer's thread, so their callers wait and the loop runs
    the keeper. Without one, they wait as soon as the limit is passed."""

    def __init__(self, database: Path, limit_bytes: int, every: int = WAL_LOOK_EVERY) -> None:
        self._wal = wal_path(database)
        self._limit = limit_bytes
        self._every = every
        self._calls = 0
        self._waiting = False
        self.over_limit: Callable[[int], bool] | None = None

    def over(self) -> bool:
        """Whether writes should wait for the keeper (see the class docstring)."""
        self._calls += 1
        if not self._waiting and self._calls % self._every:
            return False
        size = wal_size(self._wal)
        self._waiting = size > self._limit and (self.over_limit is None or self.over_limit(size))
        return self._waiting


class WalKeeper:
    """Checkpoints the database as the module says: passive ones on `checkpointer` (a
    connection used for nothing else), the rest through `writer_checkpoint`.

    `writer_checkpoint(pragma)`, when given, runs the RESTART and TRUNCATE checkpoints
    on the store's writer's connection and returns the PRAGMA's row (else they run on
    `checkpointer`): SQLite counts a WAL started over as a change in every other
    connection's `PRAGMA data_version`, which the store reads to learn that another
    process wrote (`bot.store.history_cache`). Writers wait for those either way."""

    def __init__(
        self, checkpointer: SqliteThread, database: Path, limit_bytes: int = WAL_LIMIT_BYTES,
        writer_checkpoint: Checkpoint | None = None,
    ) -> None:
        self._checkpointer = checkpointer
        self._writer_checkpoint = writer_checkpoint
        self._wal = wal_path(database)
        self._limit = limit_bytes
        self._version: int | None = None  # PRAGMA data_version at the last regular look
        self._quiet_until = 0.0  # monotonic: no restart or truncation before this, after a busy one
        self._nudged = asyncio.Event()
        # The PASSIVE running (or last run) before a restart, the WAL's size when it began, and
        # how many ran since the last restart. Started from the event loop's thread, by whichever
        # comes first: `past_limit` (its caller may never yield to the loop) or `look`.
        self._catching_up: concurrent.futures.Future[list[Any]] | None = None
        self._caught_up_from = 0
        self._passes = 0
        self._ready = False  # decided: the next step is the RESTART (writers were told to wait)
        # The file's size when the WAL was last restarted: it keeps that size, past the limit,
        # until the next commit starts it over and cuts it back to the limit.
        self._restarted_at: int | None = None

    def wal_bytes(self) -> int:
        """The WAL file's size now; 0 when there is none. (A stat: microseconds.)"""
        return wal_size(self._wal)

    def past_limit(self, size: int) -> bool:
        """The WAL has passed its limit (it is `size` bytes): whether writers should now
        wait for the restart, because the PASSIVE checkpoints before it have caught up (see
        `_caught_up`, which starts them on the checkpointer's thread), or the WAL is RUNAWAY
        times its limit; then the keeper is woken to restart it. (Event loop's thread.)"""
        if size == self._restarted_at:
            return False  # restarted already: the next commit cuts it back
        if size > RUNAWAY * self._limit:
            self._ready = True
        elif time.monotonic() < self._quiet_until or not self._caught_up(size):
            return False
        self._nudged.set()
        return True

    def nudge(self) -> None:
        """Look at the WAL now, not at the next poll."""
        self._nudged.set()

    async def look(self, regular: bool) -> Outcome:
        """One look at the WAL: restart it when over the limit, truncate it when (on a
        `regular` look, once an `interval`) idle, else a passive checkpoint on a regular look."""
        size = self.wal_bytes()
        if size == 0:
            return "none"
        idle = regular and await self._idle()
        if time.monotonic() >= self._quiet_until:
            if idle:
                return await self._on_writer(TRUNCATE_CHECKPOINT, "truncated")
            if size > self._limit and size != self._restarted_at:
                return await self._restart()
        if regular and not idle:
            return await self._checkpoint(self._checkpointer.execute_fetchall(CHECKPOINT), "passive")
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

    async def _restart(self) -> Outcome:
        """The PASSIVE checkpoints on the checkpointer's connection until they caught up (or
        the WAL ran away), then RESTART on the writer's."""
        try:
            while not self._caught_up(self.wal_bytes()):
                assert self._catching_up is not None  # started by `_caught_up`
                await asyncio.wait([asyncio.wrap_future(self._catching_up)])
                self._ready = self._ready or self.wal_bytes() > RUNAWAY * self._limit
            if self._catching_up is None:  # ran away before any: the RESTART copies it all
                self._catching_up = self._checkpointer.submit_fetchall(CHECKPOINT)
            if await self._checkpoint(asyncio.wrap_future(self._catching_up), "passive") == "busy":
                return "busy"
            restarted = await self._on_writer(RESTART_CHECKPOINT, "restarted")
            self._restarted_at = self.wal_bytes() if restarted == "restarted" else None
            return restarted
        finally:
            self._catching_up, self._passes, self._ready = None, 0, False

    def _caught_up(self, size: int) -> bool:
        """Whether the PASSIVE checkpoints before a restart have caught up: the last one
        finished (or failed) with less than 1/CATCH_UP_TAIL of the limit written since it
        began, or CATCH_UP_PASSES ran, or the WAL ran away (then writers wait: it is decided
        until the restart). Starts the next one when not (and none runs)."""
        if self._ready:
            return True
        running = self._catching_up
        if running is not None:
            if not running.done():
                return False
            small_tail = size - self._caught_up_from < self._limit // CATCH_UP_TAIL
            if small_tail or running.exception() is not None or self._passes >= CATCH_UP_PASSES:
                self._ready = True
                return True
        self._catching_up = self._checkpointer.submit_fetchall(CHECKPOINT)
        self._caught_up_from = size
        self._passes += 1
        return False

    async def _on_writer(self, pragma: str, done: Outcome) -> Outcome:
        if self._writer_checkpoint is None:
            return await self._checkpoint(self._checkpointer.execute_fetchall(pragma), done)
        return await self._checkpoint(self._writer_checkpoint(pragma), done)

    async def _idle(self) -> bool:
        """Whether no other connection committed since the last regular look."""
        rows = await self._checkpointer.execute_fetchall(DATA_VERSION)
        version, self._version = self._version, int(rows[0][0])
        return version == self._version

    @staticmethod
    async def _checkpoint(running: Awaitable[list[Any]], done: Outcome) -> Outcome:
        """A checkpoint PRAGMA's row, awaited: `done`, or "busy" when a reader or writer kept it
        from finishing."""
        try:
            rows = await running
        except sqlite3.OperationalError as exc:  # locked: try again at the next look
            log.debug("checkpoint skipped: %s", exc)
            return "busy"
        return "busy" if rows and rows[0][0] else done
