"""Engine supervision: notice a dead engine, restart it with backoff, give up loudly.

`Supervisor` wraps any engine that can say whether it is `alive()` and
`restart()` itself, and is itself an `Engine`. While the engine is being
restarted, requests wait for it (up to `hold_s` seconds) instead of failing;
in-flight requests fail at once (the engine died under them), so their users
hear of it straight away. An engine that has replies in flight and produces no
chunk for `stall_s` seconds (its engine core wedged, or stopped by SIGSTOP: the
process exists but makes no progress) is *stalled* and treated like a dead one,
state `stalled` until it is back. After `max_restarts` restarts within `window_s`
seconds it stops trying: state `failed`, logged at ERROR, and `restart()` (an
admin's `/model NAME` for the model that should be serving) tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from engine.base import Engine
from engine.errors import EngineStalledError, EngineUnavailableError, ModelLoadError
from engine.registry import ModelSpec
from engine.types import ChatMessage, EngineStats, ReplyChunk, Sampling

log = logging.getLogger(__name__)


class Restartable(Engine, Protocol):
    """An engine that knows whether it still runs and can start its model again."""

    def alive(self) -> bool:
        """False once the engine died (its process exited, vLLM reports it errored)."""
        ...

    async def restart(self) -> None:
        """Start the current model again after a death; raises ModelLoadError."""
        ...

    def pids(self) -> list[int]:
        """The engine's own processes (empty when it runs in this one)."""
        ...


@dataclass(frozen=True, slots=True)
class SupervisionPolicy:
    """How hard to try. Seconds throughout; settings HEARTH_ENGINE_*."""

    check_every_s: float = 1.0  # how often liveness is polled
    hold_s: float = 120.0  # how long a request waits for a restarting engine
    backoff_s: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0)
    max_restarts: int = 5  # restarts within window_s before giving up
    window_s: float = 600.0
    # Replies in flight and no chunk from any of them this long: stalled (HEARTH_ENGINE_TIMEOUT_S).
    stall_s: float = 60.0


# (state, detail): "restarting" (died) / "stalled" (no progress) / "ready" / "failed"
EngineEvent = Callable[[str, str], None]


class Supervisor:
    """An `Engine` that restarts the engine it wraps when it dies."""

    def __init__(
        self,
        engine: Restartable,
        policy: SupervisionPolicy = SupervisionPolicy(),
        on_event: EngineEvent | None = None,
        clock: Callable[[], float] = time.monotonic,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self._engine = engine
        # Whether the process is stopping: an engine that dies then (a terminal's Ctrl-C
        # reaches vLLM's processes too) is not restarted, and nobody is told it "died".
        self._stopping = stopping
        self._policy = policy
        self._on_event = on_event or _log_only
        self._clock = clock
        self._up = asyncio.Event()
        self._restarts: deque[float] = deque()
        self._state = "stopped"
        self._last_error = ""
        self._total_restarts = 0
        self._recovering: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        # Progress, for the stall check: a chunk costs one increment; the watcher compares.
        self._busy = 0  # replies reading from the engine now
        self._chunks = 0  # chunks read so far
        self._seen_chunks = 0  # as the watcher last saw it
        self._progress_at = clock()  # the last progress the watcher saw (or idle to busy)
        self._epoch = 0  # bumped by each death or stall: replies started before it end
        self._stalled_s: float | None = None  # why the current epoch began, when a stall
        self._replies: set[_Reply] = set()  # replies reading from the engine now

    @property
    def spec(self) -> ModelSpec:
        return self._engine.spec

    @property
    def max_model_len(self) -> int:
        return self._engine.max_model_len

    def pids(self) -> list[int]:
        """The supervised engine's processes (vLLM's engine core)."""
        return self._engine.pids()

    @property
    def inner(self) -> Restartable:
        """The supervised engine (for benchmarks and tests that need its specifics)."""
        return self._engine

    def stats(self) -> EngineStats:
        """The engine's counters, with the supervisor's view of its state and restarts."""
        inner = self._engine.stats()
        state = inner.state if self._state == "ready" else self._state
        return dataclasses.replace(
            inner, state=state, restarts=self._total_restarts, last_error=self._last_error
        )

    async def start(self) -> None:
        await self._engine.start()
        self._mark_ready()
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(), name="engine-watch")

    async def close(self) -> None:
        for task in (self._watcher, self._recovering):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._watcher = self._recovering = None
        self._up.clear()
        self._state = "stopped"
        await self._engine.close()

    async def switch(self, spec: ModelSpec) -> None:
        """Serve `spec`; for the model that should be serving, a restart when it is down."""
        if spec.name == self._engine.spec.name:
            if not self._engine.alive() or self._state == "failed":
                await self.restart()
            return
        if self._state in ("failed", "stopped") or not self._engine.alive():
            await self._replace(spec)  # nothing serves: load `spec` now, no waiting
            return
        await self._wait_up()
        async with self._lock:
            await self._engine.switch(spec)

    async def _replace(self, spec: ModelSpec) -> None:
        """Serve `spec` while nothing serves (never started, gave up, or dead): a fresh start
        with a clean crash record. Raises ModelLoadError; the state then stays as it was."""
        if self._recovering is not None and not self._recovering.done():
            self._recovering.cancel()
            await asyncio.gather(self._recovering, return_exceptions=True)
        async with self._lock:
            await self._engine.switch(spec)
        self._restarts.clear()
        self._mark_ready()
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(), name="engine-watch")

    async def restart(self) -> None:
        """Start the model again now, forgetting earlier crashes (an admin asked)."""
        self._restarts.clear()
        if self._recovering is not None and not self._recovering.done():
            await asyncio.shield(self._recovering)
            return
        self._up.clear()
        self._state = "restarting"
        async with self._lock:
            await self._engine.restart()
        self._total_restarts += 1
        self._mark_ready()

    async def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        await self._wait_up()
        return await self._engine.count_tokens(messages)

    async def stream(
        self, messages: Sequence[ChatMessage], sampling: Sampling
    ) -> AsyncGenerator[ReplyChunk, None]:
        """The engine's chunks, unless it dies or stalls while one is awaited: a request
        sent to a dead or stopped engine core may never hear back. Nothing is done per
        chunk but a counter and two fields (this generator is the only layer it adds): the
        one watcher task (`_watch`, every `check_every_s`) looks at every reply in flight
        and ends the wait of one whose engine died (EngineUnavailableError) or stalled
        (EngineStalledError: the epoch moved on; a stopped process still counts as alive)
        by cancelling its read. A request the engine dropped before its first chunk is
        tried once more after the restart."""
        for attempt in range(2):
            await self._wait_up()
            started = False
            reply = self._enter(_Reply(self._epoch))
            try:
                try:
                    async with contextlib.aclosing(self._engine.stream(messages, sampling)) as chunks:
                        while True:
                            reply.task = asyncio.current_task()  # the reader may change between chunks
                            reply.waiting = True
                            try:
                                chunk = await anext(chunks)
                            except StopAsyncIteration:
                                return
                            except asyncio.CancelledError:
                                if reply.ended is None or reply.task is None:
                                    raise  # cancelled from outside: shutdown, an abort
                                reply.task.uncancel()
                                raise reply.ended from None
                            finally:
                                reply.waiting = False
                            self._chunks += 1
                            started = True
                            yield chunk
                finally:
                    self._leave(reply)
            except EngineStalledError:
                if started or attempt:
                    raise  # as for a death: part of a reply was shown, apologise now
            except EngineUnavailableError as exc:
                if self._engine.alive():
                    raise
                self._died(str(exc))
                if started or attempt:
                    raise  # the user saw part of a reply: apologise now, do not start over
                # died before this request got anywhere: wait for the restart, then try once more

    def _enter(self, reply: _Reply) -> _Reply:
        if not self._busy:
            self._progress_at = self._clock()  # idle until now: the stall clock starts here
        self._busy += 1
        self._replies.add(reply)
        return reply

    def _leave(self, reply: _Reply) -> None:
        self._busy -= 1
        self._replies.discard(reply)

    def _end_lost_replies(self) -> None:
        """Cancel the read of every reply in flight that can no longer finish (see `_check`)."""
        for reply in list(self._replies):
            if not reply.waiting or reply.ended is not None or reply.task is None:
                continue
            try:
                self._check(reply.epoch)
            except EngineUnavailableError as exc:
                reply.ended = exc
                reply.task.cancel()

    def _check(self, epoch: int) -> None:
        """Raise if a reply begun in `epoch` can no longer finish: EngineUnavailableError
        when the engine died, EngineStalledError when it stalled since."""
        if not self._engine.alive():
            raise EngineUnavailableError("the engine died during the reply")
        if self._epoch != epoch:
            if self._stalled_s is not None:
                raise EngineStalledError(self._stalled_s)
            raise EngineUnavailableError(f"the engine went down during the reply ({self._last_error})")

    async def _wait_up(self) -> None:
        if self._state == "failed":
            raise EngineUnavailableError(f"model {self.spec.name} keeps failing: {self._last_error}")
        if self._up.is_set():
            return
        try:
            await asyncio.wait_for(self._up.wait(), self._policy.hold_s)
        except TimeoutError:
            raise EngineUnavailableError(f"model {self.spec.name} is not back yet") from None
        if self._state == "failed":
            raise EngineUnavailableError(f"model {self.spec.name} keeps failing: {self._last_error}")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._policy.check_every_s)
            self._end_lost_replies()
            if not self._up.is_set():
                continue
            if not self._engine.alive():
                self._died("the engine process exited")
            elif (quiet := self._stalled_for()) is not None:
                self._died(f"no reply progress for {quiet:.0f} s", stalled_s=quiet)

    def _stalled_for(self) -> float | None:
        """Seconds the engine has had replies in flight without a chunk from any of them,
        once that reaches `stall_s`; None while it progresses, idles, or a switch or an
        admin's restart is in charge (the clock restarts then)."""
        now = self._clock()
        if self._chunks != self._seen_chunks or not self._busy or self._lock.locked():
            self._seen_chunks, self._progress_at = self._chunks, now
            return None
        quiet = now - self._progress_at
        return quiet if quiet >= self._policy.stall_s else None

    def _died(self, reason: str, stalled_s: float | None = None) -> None:
        """Called on noticing death (or a stall, `stalled_s` seconds without progress):
        end the replies in flight, start recovering, once."""
        if self._recovering is not None and not self._recovering.done():
            return
        if self._state == "failed" or self._lock.locked():
            return  # a switch or an admin's restart is in charge
        self._up.clear()
        self._epoch += 1
        self._stalled_s = stalled_s
        self._last_error = reason
        if self._stopping():
            self._state = "stopped"
            self._end_lost_replies()
            log.info("engine for %s ended while Hearth stops (%s); not restarting it", self.spec.name, reason)
            return
        self._state = "restarting" if stalled_s is None else "stalled"
        self._end_lost_replies()
        log.error("engine for %s %s (%s); restarting", self.spec.name,
                  "died" if stalled_s is None else "stalled", reason)
        self._on_event(self._state, reason)
        self._recovering = asyncio.create_task(self._recover(), name="engine-recover")

    async def _recover(self) -> None:
        attempt = 0
        while True:
            now = self._clock()
            while self._restarts and now - self._restarts[0] > self._policy.window_s:
                self._restarts.popleft()
            if len(self._restarts) >= self._policy.max_restarts:
                self._give_up()
                return
            delay = self._policy.backoff_s[min(attempt, len(self._policy.backoff_s) - 1)]
            await asyncio.sleep(delay)
            self._restarts.append(self._clock())
            try:
                async with self._lock:
                    await self._engine.restart()
            except ModelLoadError as exc:
                self._last_error = exc.reason
                log.error("restarting %s failed: %s", self.spec.name, exc.reason)
                attempt += 1
                continue
            self._total_restarts += 1
            self._mark_ready()
            return

    def _give_up(self) -> None:
        self._state = "failed"
        self._up.set()  # waiters wake and fail at once instead of holding
        log.error(
            "engine for %s failed %d times in %.0f s; giving up until an admin runs /model %s (%s)",
            self.spec.name, self._policy.max_restarts, self._policy.window_s, self.spec.name,
            self._last_error,
        )
        self._on_event("failed", self._last_error)

    def _mark_ready(self) -> None:
        was = self._state
        self._state = "ready"
        self._up.set()
        if was in ("restarting", "stalled", "failed"):
            log.warning("engine for %s is back", self.spec.name)
            self._on_event("ready", "")


@dataclass(eq=False, slots=True)
class _Reply:
    """One reply reading from the engine: the task reading, the epoch it began in, whether
    it awaits a chunk now, and why the watcher ended it (if it did)."""

    epoch: int
    task: asyncio.Task[Any] | None = None
    waiting: bool = False
    ended: EngineUnavailableError | None = None


def _log_only(state: str, detail: str) -> None:
    return None
