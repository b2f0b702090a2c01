"""One platform's fault is that platform's: each adapter runs under a supervisor of its own.

An unexpected error in an adapter (a bug, a library choking on something a platform
sent) restarts that adapter after a pause (1, 2, 5, 10, then every 30 s), logged once
with its traceback; the other platforms keep serving. What the README documents as
fatal still ends the process (exit 1): a rejected token or disallowed intents
(`PlatformAuthError`), a platform down past HEARTH_PLATFORM_DOWN_S
(`PlatformDownError`), shard settings Discord refuses (`ConfigError`): the supervisor
returns that error (returned, not raised: the runner reports it in one line, no
traceback). An adapter that returns (the terminal at the end of its input) ends the
supervisor, and so the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from bot.errors import ConfigError, HearthError, PlatformAuthError, PlatformDownError

if TYPE_CHECKING:
    from adapters.base import Platform

log = logging.getLogger(__name__)

RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)  # before each restart; the last repeats
STEADY_S = 120.0  # an adapter that served this long before failing starts the backoff over
FATAL = (PlatformAuthError, PlatformDownError, ConfigError)


class Supervisor:
    """Runs one platform until it returns, fails fatally, or `stopping` is set."""

    def __init__(
        self, platform: Platform, stopping: asyncio.Event, *,
        backoff: Sequence[float] = RESTART_BACKOFF_S, steady_s: float = STEADY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._platform = platform
        self._stopping = stopping
        self._backoff = tuple(backoff)
        self._steady_s = steady_s
        self._clock = clock

    async def run(self) -> HearthError | None:
        """The fatal error that ended the platform (see the module docstring), or None when it
        returned or was stopped; restarts it after anything else."""
        failures = 0
        while not self._stopping.is_set():
            started = self._clock()
            try:
                await self._platform.run()
                return None
            except FATAL as exc:
                return exc
            except Exception:  # the outer boundary of one platform: the others must keep serving
                failures = 0 if self._clock() - started >= self._steady_s else failures
                wait = self._backoff[min(failures, len(self._backoff) - 1)]
                log.exception("%s failed unexpectedly; restarting it in %.0f s (the others keep serving)",
                              self._platform.platform, wait)
            failures += 1
            await self._pause(wait)
        return None

    async def _pause(self, seconds: float) -> None:
        """Wait before a restart; a stop ends the wait at once."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
