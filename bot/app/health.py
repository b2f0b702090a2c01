"""Health and readiness, answered on the metrics port (`bot.app.metrics_server`) from the
first second of `hearth run`, with the state so far.

- `/healthz`: the process is alive and its event loop answers (200 always, while it runs),
  with the phase: `starting` (checks, the model loading), `serving`, `stopping`.
- `/readyz`: 200 only when every part serves, else 503; the body (JSON) says each part's
  state: `store` (a write commits), `engine` (the model serves), one `platform:NAME` per
  platform (connected). Before a part exists it is reported as what start-up is doing.

A part is either set (`Readiness.set`: what start-up is at) or watched (`Readiness.watch`:
a probe asked at each request, within PROBE_TIMEOUT_S).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from bot.errors import StoreUnavailableError
from bot.store import GlobalSettings
from bot.store.faults import StoreHealth, patience
from engine.types import EngineStats

PROBE_TIMEOUT_S = 2.0
STORE_PROBE_EVERY_S = 10.0  # a write at most this often; between, the last result and the store's health
PLATFORM_PROBE_S = 0.05  # a connected platform says so at once
PROBE_SETTING = "health_probe:"

Phase = Literal["starting", "serving", "stopping"]


@dataclass(frozen=True, slots=True)
class PartState:
    """One part's readiness and a few words on it."""

    ok: bool
    detail: str


Probe = Callable[[], Awaitable[PartState]]


class Readiness:
    """The state of each part, for `/healthz` and `/readyz`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started = clock()
        self._set: dict[str, PartState] = {
            "store": PartState(False, "checking the database"),
            "engine": PartState(False, "waiting for the database"),
            "platforms": PartState(False, "not started"),
        }
        self._probes: dict[str, Probe] = {}
        self.phase: Phase = "starting"

    def set(self, part: str, ok: bool, detail: str) -> None:
        """`part` is (not) ready, for this reason; replaces a probe."""
        self._probes.pop(part, None)
        self._set[part] = PartState(ok, detail)

    def watch(self, part: str, probe: Probe) -> None:
        """Ask `probe` about `part` at each request from now on."""
        self._set.pop(part, None)
        self._probes[part] = probe

    def forget(self, part: str) -> None:
        """`part` is no more (the placeholder for platforms, once they are known)."""
        self._set.pop(part, None)
        self._probes.pop(part, None)

    def alive(self) -> dict[str, object]:
        """`/healthz`'s body."""
        return {"alive": True, "phase": self.phase, "uptime_s": round(self._clock() - self._started, 1)}

    async def report(self) -> tuple[bool, dict[str, object]]:
        """Whether every part is ready and the phase is `serving`, and `/readyz`'s body."""
        states = dict(self._set)
        for part, probe in list(self._probes.items()):
            states[part] = await _asked(probe)
        ready = self.phase == "serving" and all(state.ok for state in states.values())
        parts = {part: {"ok": s.ok, "detail": s.detail} for part, s in sorted(states.items())}
        return ready, {"ready": ready, "phase": self.phase, "parts": parts}


async def _asked(probe: Probe) -> PartState:
    try:
        return await asyncio.wait_for(probe(), PROBE_TIMEOUT_S)
    except TimeoutError:
        return PartState(False, f"no answer within {PROBE_TIMEOUT_S:.0f} s")


class StoreProbe:
    """Whether the store takes a write: one (a global setting of this instance's) at most every
    STORE_PROBE_EVERY_S, and the store's own health in between."""

    def __init__(self, settings: GlobalSettings, health: StoreHealth, instance: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._health = health
        self._name = PROBE_SETTING + instance
        self._clock = clock
        self._last: tuple[float, PartState] | None = None

    async def __call__(self) -> PartState:
        now = self._clock()
        if self._health.state == "failing":
            return PartState(False, f"failing: {self._health.reason}")
        if self._last is not None and now - self._last[0] < STORE_PROBE_EVERY_S:
            return self._last[1]
        try:
            with patience(PROBE_TIMEOUT_S / 2):
                await self._settings.set_setting(self._name, f"{time.time():.0f}")
            state = PartState(True, "writable")
        except StoreUnavailableError as exc:
            state = PartState(False, f"not writable: {exc}")
        self._last = (now, state)
        return state


@runtime_checkable
class Connects(Protocol):
    """A platform that can say when it is connected (Discord, Telegram)."""

    async def wait_until_ready(self) -> None: ...


def platform_probe(platform: object) -> Probe:
    """A platform is connected when its `wait_until_ready` returns at once; one that cannot say
    (the terminal) is, while it runs."""

    async def probe() -> PartState:
        if not isinstance(platform, Connects):
            return PartState(True, "running")
        try:
            await asyncio.wait_for(platform.wait_until_ready(), PLATFORM_PROBE_S)
        except TimeoutError:
            return PartState(False, "connecting")
        return PartState(True, "connected")

    return probe


def engine_probe(stats: Callable[[], EngineStats]) -> Probe:
    """The engine serves when its state is `ready` (a remote engine: a server answers)."""

    async def probe() -> PartState:
        now = stats()
        return PartState(now.state == "ready", f"{now.model}: {now.state}")

    return probe
