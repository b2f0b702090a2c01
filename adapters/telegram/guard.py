"""The webhook server's connections, bounded: a cap, and no connection idles before its request.

aiohttp's server has a keep-alive timeout but none for a request's headers: a connection
that sends nothing (or a header a byte a minute) is kept for ever, so 1,100 idle
connections used up the process's file descriptors, and every accept that then failed
was logged (35.6 MB in 25 s). Telegram itself opens at most `max_connections` (40 unless
setWebhook says otherwise). `ConnectionGuard` wraps each connection aiohttp serves:

- at most `cap` connections are open; a new one over the cap closes the oldest that has
  not reached a request yet (an idle or slow one), or, when all are busy, is itself closed;
- a connection that has not reached a request `header_s` seconds after it opened is closed.

Reaching a request is marked by the handler (`started`), once aiohttp has parsed its headers.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Factory = Callable[[], asyncio.Protocol]


class ConnectionGuard:
    """Makes the protocols the listening socket serves; knows every open connection."""

    def __init__(self, factory: Factory, cap: int, header_s: float) -> None:
        self._factory = factory
        self._cap = cap
        self._header_s = header_s
        self._waiting: OrderedDict[asyncio.BaseTransport, asyncio.TimerHandle] = OrderedDict()
        self._open: set[asyncio.BaseTransport] = set()
        self.refused = 0  # connections closed to stay under the cap or for idling (for tests, logs)

    @property
    def open(self) -> int:
        return len(self._open)

    def protocol(self) -> asyncio.Protocol:
        """The protocol for one new connection (the factory `loop.create_server` calls)."""
        return _Guarded(self._factory(), self)

    def started(self, transport: asyncio.BaseTransport | None) -> None:
        """A request reached the handler on `transport`: it is no longer idle."""
        timer = self._waiting.pop(transport, None) if transport is not None else None
        if timer is not None:
            timer.cancel()

    def _opened(self, transport: asyncio.BaseTransport) -> bool:
        """Track a new connection; False when it must be closed at once (every one is busy)."""
        if len(self._open) >= self._cap:
            if not self._waiting:
                self._refuse(transport, "every connection is busy")
                return False
            oldest = next(iter(self._waiting))
            self._refuse(oldest, "the connection cap was reached")
        self._open.add(transport)
        loop = asyncio.get_running_loop()
        self._waiting[transport] = loop.call_later(self._header_s, self._idle, transport)
        return True

    def _closed(self, transport: asyncio.BaseTransport) -> None:
        self._open.discard(transport)
        timer = self._waiting.pop(transport, None)
        if timer is not None:
            timer.cancel()

    def _idle(self, transport: asyncio.BaseTransport) -> None:
        if self._waiting.pop(transport, None) is not None:
            self._refuse(transport, f"no request within {self._header_s:.0f} s")

    def _refuse(self, transport: asyncio.BaseTransport, why: str) -> None:
        self.refused += 1
        if self.refused == 1 or self.refused % 1000 == 0:  # a flood is one line, not one per connection
            log.warning("webhook: closed a connection (%s); %d so far", why, self.refused)
        self._closed(transport)
        abort = getattr(transport, "abort", None)
        (abort or transport.close)()


class _Guarded(asyncio.Protocol):
    """One connection: aiohttp's protocol, seen by the guard as it opens and closes."""

    def __init__(self, inner: asyncio.Protocol, guard: ConnectionGuard) -> None:
        self._inner = inner
        self._guard = guard
        self._transport: asyncio.BaseTransport | None = None  # set once aiohttp serves it

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._guard._opened(transport):
            self._transport = transport
            self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:  # a connection refused at once never reached aiohttp
            self._guard._closed(self._transport)
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._transport is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._transport is not None else None

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
