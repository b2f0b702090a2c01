"""When the database itself fails: its errors as one kind, calls retried, and its health.

A store call that fails because the database cannot read or commit (disk full, a lock
held past the busy timeout, an I/O error, a corrupt page, the server unreachable or
restarting) is retried with backoff and, once the caller's patience is spent, raises
`bot.errors.StoreUnavailableError`, never the driver's error. Other errors (a bug in
a statement, a constraint) pass through at once.

How long a call keeps trying is the caller's choice, set with `patience(seconds)`
around it (a context variable, so it follows the call into the store):

- unset (the default): until the store is back. The answering path runs so: a reply
  and its question's status are committed, or retried until they are; a reply never
  fails for a store that recovers. Shutdown cancels the wait.
- a few seconds: intake (`bot.pipeline.intake.Accept`). A message not committed is
  not acknowledged; its platform keeps it (Telegram) or it is journalled (Discord).
- 0: one try (traces that must never hold a reply up).

`StoreHealth` keeps whether the store is failing and tells its listeners once when it
starts failing and once when it is back (operators, `/status`, metrics).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal, TypeVar

from bot.errors import StoreUnavailableError

log = logging.getLogger(__name__)

BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)  # between tries of one call; the last repeats
LIFECYCLE = frozenset({"open", "close"})  # not retried: opening is checked at start-up

_PATIENCE: ContextVar[float | None] = ContextVar("store_patience", default=None)

T = TypeVar("T")
HealthState = Literal["ok", "failing"]
HealthListener = Callable[[HealthState, str], None]  # (state, reason)


@contextmanager
def patience(seconds: float | None) -> Iterator[None]:
    """Store calls made inside give up after `seconds` (None: retry until the store is back)."""
    token = _PATIENCE.set(seconds)
    try:
        yield
    finally:
        _PATIENCE.reset(token)


class StoreHealth:
    """Whether the store commits. `failed`/`recovered` are called by every store call;
    listeners hear of a change of state only (once per outage, once per recovery)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._listeners: list[HealthListener] = []
        self.state: HealthState = "ok"
        self.reason = ""
        self.since = clock()
        self.outages = 0

    def listen(self, listener: HealthListener) -> None:
        self._listeners.append(listener)

    @property
    def failing_for(self) -> float:
        """Seconds the store has been failing (0 when it is fine)."""
        return self._clock() - self.since if self.state == "failing" else 0.0

    def failed(self, reason: str) -> None:
        self.reason = reason
        if self.state == "failing":
            return
        self.state, self.since = "failing", self._clock()
        self.outages += 1
        log.error("the database is failing (%s): messages wait until it is back", reason)
        self._tell("failing", reason)

    def recovered(self) -> None:
        if self.state == "ok":
            return
        log.warning("the database is back after %.1f s", self._clock() - self.since)
        self.state, self.since = "ok", self._clock()
        self._tell("ok", "")

    def _tell(self, state: HealthState, reason: str) -> None:
        for listener in self._listeners:
            listener(state, reason)


class HasHealth:
    """What `retried_on` needs of a store: its health."""

    health: StoreHealth


Method = Callable[..., Awaitable[Any]]
IsFault = Callable[[BaseException], bool]
Describe = Callable[[BaseException], str]


def retried_on(is_fault: IsFault, describe: Describe) -> Callable[[type[T]], type[T]]:
    """A class decorator for a store: every public coroutine method (but `open`/`close`)
    retries on an error `is_fault` accepts, within the caller's `patience`, then raises
    StoreUnavailableError(`describe(error)`); it reports to the instance's `health`."""

    def decorate(cls: type[T]) -> type[T]:
        for name, member in list(vars(cls).items()):
            if name.startswith("_") or name in LIFECYCLE or not inspect.iscoroutinefunction(member):
                continue
            setattr(cls, name, _retrying(name, member, is_fault, describe))
        return cls

    return decorate


def _retrying(name: str, method: Method, is_fault: IsFault, describe: Describe) -> Method:
    @functools.wraps(method)
    async def call(self: HasHealth, *args: Any, **kwargs: Any) -> Any:
        limit = _PATIENCE.get()
        deadline = None if limit is None else time.monotonic() + limit
        attempt = 0
        while True:
            try:
                result = await method(self, *args, **kwargs)
            except Exception as exc:
                if not is_fault(exc):
                    raise
                reason = describe(exc)
                self.health.failed(reason)
                wait = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
                if deadline is not None and time.monotonic() + wait > deadline:
                    raise StoreUnavailableError(name.replace("_", " "), reason) from None
                log.debug("store %s failed (%s); retry %d in %.1f s", name, reason, attempt + 1, wait)
                attempt += 1
                await asyncio.sleep(wait)
                continue
            self.health.recovered()
            return result

    return call
