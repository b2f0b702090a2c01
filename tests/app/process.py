"""`hearth run` as a real process: start it, watch its log, kill it by pid, count what it did."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path

import psutil

START_TIMEOUT_S = 240.0
STOP_BOUND_S = 30.0  # Hearth's own bound is 10 s; this only keeps a hung test finite


def hearth_env(data_dir: Path, db: Path, **settings: str) -> dict[str, str]:
    """The environment of a Hearth on the shared demo models, its own database, short replies."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    env.update(
        HEARTH_DATA_DIR=str(data_dir), HEARTH_DB_PATH=str(db), HEARTH_KV_CACHE_GIB="0.25",
        HEARTH_MAX_REPLY_TOKENS="16", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1",
        # These tests count every message: no rate limit may refuse one.
        HEARTH_USER_MESSAGES_PER_MINUTE="0", HEARTH_CHANNEL_MESSAGES_PER_MINUTE="0",
    )
    env.update({f"HEARTH_{k.upper()}": v for k, v in settings.items()})
    return env


class HearthProcess:
    """One `python -m bot run` in a directory of its own, its stderr collected line by line."""

    def __init__(self, cwd: Path, env: dict[str, str], prefix: Sequence[str] = ()) -> None:
        self._cwd = cwd
        self._env = env
        self._prefix = tuple(prefix)  # a command that runs the rest (e.g. setpriv …)
        self.process: asyncio.subprocess.Process | None = None
        self.log: list[str] = []
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self) -> HearthProcess:
        self.process = await asyncio.create_subprocess_exec(
            *self._prefix, sys.executable, "-m", "bot", "run", cwd=self._cwd, env=self._env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read())
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def wait_for_log(self, text: str, within: float = START_TIMEOUT_S) -> None:
        """Until a log line contains `text`; fails if the process ends first."""
        async def found() -> None:
            while not any(text in line for line in self.log):
                if self.process is not None and self.process.returncode is not None and self._reader_done():
                    raise AssertionError(f"hearth ended before logging {text!r}:\n" + self.tail())
                self._changed.clear()
                await asyncio.wait([asyncio.ensure_future(self._changed.wait())], timeout=0.5)
        await asyncio.wait_for(found(), within)

    async def kill(self) -> None:
        """kill -9, as the OOM killer or a crash would."""
        os.kill(self.pid, signal.SIGKILL)
        await self.wait(STOP_BOUND_S)

    async def terminate(self) -> float:
        """SIGTERM; the seconds until the process was gone."""
        started = time.monotonic()
        os.kill(self.pid, signal.SIGTERM)
        await self.wait(STOP_BOUND_S)
        return time.monotonic() - started

    async def wait(self, within: float) -> int:
        assert self.process is not None
        code = await asyncio.wait_for(self.process.wait(), within)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)
        return code

    def tail(self, lines: int = 40) -> str:
        return "".join(self.log[-lines:])

    def ensure_gone(self) -> None:
        """Test teardown: never leave a Hearth running (only the one this test started)."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()

    async def _read(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        async for line in self.process.stderr:
            self.log.append(line.decode("utf-8", "replace"))
            self._changed.set()
        self._changed.set()

    def _reader_done(self) -> bool:
        return self._reader is not None and self._reader.done()


def engine_pids(db: Path) -> list[int]:
    """vLLM's engine processes as Hearth recorded them beside its database."""
    record = json.loads(db.with_name(db.name + ".pid").read_text("utf-8"))
    return [int(pid) for pid in record.get("engine", {})]


def gone(pids: list[int], within: float) -> bool:
    """Whether every one of `pids` has ended within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(_running(pid) for pid in pids):
            return True
        time.sleep(0.2)
    return False


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def rows(db: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    """A read-only look into Hearth's database."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        return list(conn.execute(sql, params))


async def until(predicate: Callable[[], bool], within: float, every: float = 0.2) -> None:
    """Poll `predicate` until true; TimeoutError after `within` seconds."""
    async def wait() -> None:
        while not predicate():  # noqa: ASYNC110 - the predicate reads another process's state
            await asyncio.sleep(every)
    await asyncio.wait_for(wait(), within)
