"""Engine supervision: notice a dead engine, restart it with backoff, give up loudly.

`Supervisor` wraps any engine that can say whether it is `alive()` and
`restart()` itself, and is itself an `Engine`. While the engine is being
restarted, requests wait for it (up to `hold_s` seconds) instead of failing;
in-flight requests fail at once (the engine died under them), so their users
hear of it straight away. After `max_restarts` restarts within `window_s`
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
from typing import Protocol

from engine.base import Engine
from engine.errors import EngineUnavailableError, ModelLoadError
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


EngineEvent = Callable[[str, str], None]  # (state, detail): "restarting" / "ready" / "failed"


class Supervisor:
    """An `Engine` that restarts the engine it wraps when it dies."""

    def __init__(
        self,
        engine: Restartable,
        policy: SupervisionPolicy = SupervisionPolicy(),
        on_event: EngineEvent | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
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
        for attempt in range(2):
            await self._wait_up()
            started = False
            try:
                async with contextlib.aclosing(self._engine.stream(messages, sampling)) as chunks:
                    async for chunk in self._watched(chunks):
                        started = True
                        yield chunk
                return
            except EngineUnavailableError as exc:
                if self._engine.alive():
                    raise
                self._died(str(exc))
                if started or attempt:
                    raise  # the user saw part of a reply: apologise now, do not start over
                # died before this request got anywhere: wait for the restart, then try once more

    async def _watched(self, chunks: AsyncGenerator[ReplyChunk, None]) -> AsyncGenerator[ReplyChunk, None]:
        """The chunks, unless the engine dies while one is awaited: a request sent to a dead
        engine core may never hear back, so every `check_every_s` without a chunk the
        engine's life is checked, and a dead one ends the wait (EngineUnavailableError)."""
        while True:
            waiting = asyncio.ensure_future(anext(chunks))
            try:
                while not (await asyncio.wait({waiting}, timeout=self._policy.check_every_s))[0]:
                    if not self._engine.alive():
                        raise EngineUnavailableError("the engine died during the reply")
            finally:  # cancelled or given up: the pending read must end before `chunks` closes
                if not waiting.done():
                    waiting.cancel()
                    await asyncio.gather(waiting, return_exceptions=True)
            try:
                chunk = waiting.result()
            except StopAsyncIteration:
                return
            yield chunk

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
            if self._up.is_set() and not self._engine.alive():
                self._died("the engine process exited")

    def _died(self, reason: str) -> None:
        """Called on noticing death: start recovering, once."""
        if self._recovering is not None and not self._recovering.done():
            return
        if self._state == "failed" or self._lock.locked():
            return  # a switch or an admin's restart is in charge
        self._up.clear()
        self._last_error = reason
        self._state = "restarting"
        log.error("engine for %s died (%s); restarting", self.spec.name, reason)
        self._on_event("restarting", reason)
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
        if was in ("restarting", "failed"):
            log.warning("engine for %s is back", self.spec.name)
            self._on_event("ready", "")


def _log_only(state: str, detail: str) -> None:
    return None
