"""One Hearth per database, and no leftovers: the pid file beside the database
(`hearth.sqlite3.pid` in the data dir by default).

It records Hearth's own process and vLLM's engine processes (pid and start time).
At start-up a live Hearth on the same database stops this one (two bots on one
database and one token would fight); engine processes an earlier Hearth left
behind (if even the lifeline watchdog was killed) are reported and ended.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import psutil

from bot.errors import ConfigError
from engine.lifeline import end_processes

log = logging.getLogger(__name__)

SUFFIX = ".pid"


class PidFile:
    """Claims the data dir for this process; `engines` keeps the engine pids current."""

    def __init__(self, database: Path) -> None:
        self._path = database.with_name(database.name + SUFFIX)
        self._pid = os.getpid()

    def claim(self) -> None:
        """Refuse a database another live Hearth holds; end an earlier one's leftovers.

        Raises ConfigError (one line) when another Hearth runs on this database."""
        earlier = self._read()
        owner = earlier.get("pid")
        if isinstance(owner, list) and owner[0] != self._pid and _alive(owner[0], owner[1]):
            raise ConfigError([f"another Hearth (pid {owner[0]}) is running on {self._path.with_suffix('')}"])
        engine = earlier.get("engine")
        leftovers = {int(pid): float(at) for pid, at in engine.items()} if isinstance(engine, dict) else {}
        alive = {pid: at for pid, at in leftovers.items() if _alive(pid, at)}
        if alive:
            log.error("engine processes %s were left running by an earlier Hearth: ending them",
                      sorted(alive))
            end_processes(alive)
        self._write([])

    def engines(self, pids: list[int]) -> None:
        """Record the engine processes now running for this Hearth."""
        self._write(pids)

    def release(self) -> None:
        """A clean exit: nothing left to find."""
        self._path.unlink(missing_ok=True)

    def _write(self, engine_pids: list[int]) -> None:
        record = {"pid": [self._pid, _started(self._pid)], "engine": {p: _started(p) for p in engine_pids}}
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._path.write_text(json.dumps(record), "utf-8")

    def _read(self) -> dict[str, object]:
        try:
            data = json.loads(self._path.read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


def _started(pid: int) -> float:
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return 0.0


def _alive(pid: object, started: object) -> bool:
    if not isinstance(pid, int) or not isinstance(started, int | float):
        return False
    try:
        process = psutil.Process(pid)
        return bool(abs(process.create_time() - started) < 0.01 and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False
