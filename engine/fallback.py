"""Fallback models: when the chosen model will not load or keeps failing, serve the next
one that loads, and go back to the chosen one as soon as it loads again.

`FallbackChain` is an `Engine` around the supervised engine. It starts the chosen
model, else each of HEARTH_FALLBACK_MODELS in order; when the supervisor gives up
on a model, it moves down the chain. While a fallback serves, the chosen model is
retried in the background with backoff (through `switch`, which keeps the
fallback serving until the chosen one is ready when memory allows); an admin's
`/model NAME` makes NAME the chosen model and stops the retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncGenerator, Sequence

from engine.errors import ModelLoadError
from engine.registry import ModelSpec
from engine.supervisor import EngineEvent, Supervisor
from engine.types import ChatMessage, EngineStats, ReplyChunk, Sampling

log = logging.getLogger(__name__)

RETRY_S = (60.0, 120.0, 300.0, 600.0)  # between attempts to load the chosen model again


class FallbackChain:
    """Serves `chosen`, else the first of `fallbacks` that loads; see the module docstring."""

    def __init__(
        self, engine: Supervisor, chosen: ModelSpec, fallbacks: Sequence[ModelSpec],
        on_event: EngineEvent | None = None, retry_s: Sequence[float] = RETRY_S,
    ) -> None:
        self._engine = engine
        self._chosen = chosen
        self._fallbacks = [f for f in fallbacks if f.name != chosen.name]
        self._on_event = on_event or (lambda state, detail: None)
        self._retry_s = tuple(retry_s)
        self._retrying: asyncio.Task[None] | None = None
        self._why = ""

    # --- the Engine protocol, by delegation -------------------------------

    @property
    def spec(self) -> ModelSpec:
        return self._engine.spec

    @property
    def max_model_len(self) -> int:
        return self._engine.max_model_len

    def stats(self) -> EngineStats:
        """The engine's counters; while a fallback serves, `note` says for what and why."""
        stats = self._engine.stats()
        if self.spec.name != self._chosen.name:
            stats = dataclasses.replace(stats, note=f"fallback for {self._chosen.name} ({self._why})")
        return stats

    def pids(self) -> list[int]:
        return self._engine.pids()

    async def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return await self._engine.count_tokens(messages)

    def stream(self, messages: Sequence[ChatMessage], sampling: Sampling) -> AsyncGenerator[ReplyChunk, None]:
        return self._engine.stream(messages, sampling)

    async def start(self) -> None:
        """The chosen model, else the first fallback that loads. Raises the chosen model's
        ModelLoadError when none does."""
        try:
            await self._engine.start()
            return
        except ModelLoadError as exc:
            failure = exc
        log.error("%s; trying the fallback models", failure)
        if not await self._fall_back(failure.reason):
            raise failure

    async def close(self) -> None:
        await self._stop_retrying()
        await self._engine.close()

    async def switch(self, spec: ModelSpec) -> None:
        """An admin's choice: it becomes the chosen model, and retries stop."""
        await self._stop_retrying()
        await self._engine.switch(spec)
        self._chosen, self._why = spec, ""

    # --- the chain -----------------------------------------------------------

    def engine_event(self, state: str, detail: str) -> None:
        """The supervisor's events: when it gives up on a model, move down the chain."""
        if state == "failed" and self._retrying is None:
            self._retrying = asyncio.create_task(self._after_failure(detail), name="engine-fallback")

    async def _after_failure(self, detail: str) -> None:
        if await self._fall_back(detail, after=self.spec.name):
            await self._retry_chosen()
        self._retrying = None

    async def _fall_back(self, reason: str, after: str | None = None) -> bool:
        """Load the first fallback (past `after`, if given) that loads; whether one did."""
        names = [f.name for f in self._fallbacks]
        start = names.index(after) + 1 if after in names else 0
        for spec in self._fallbacks[start:]:
            try:
                await self._engine.switch(spec)
            except ModelLoadError as exc:
                log.error("fallback %s did not load either: %s", spec.name, exc.reason)
                continue
            self._why = reason
            log.error("serving fallback %s because %s: %s", spec.name, self._chosen.name, reason)
            self._on_event("fallback", f"{spec.name} serves instead of {self._chosen.name} ({reason})")
            if self._retrying is None:
                self._retrying = asyncio.create_task(self._retry_chosen(), name="engine-retry-chosen")
            return True
        return False

    async def _retry_chosen(self) -> None:
        """Try the chosen model again with backoff until it loads, then serve it."""
        for attempt in range(1_000_000):
            await asyncio.sleep(self._retry_s[min(attempt, len(self._retry_s) - 1)])
            try:
                await self._engine.switch(self._chosen)
            except ModelLoadError as exc:
                log.warning("%s still does not load: %s", self._chosen.name, exc.reason)
                continue
            log.warning("%s loads again; the fallback stepped down", self._chosen.name)
            self._on_event("chosen", f"{self._chosen.name} serves again")
            self._why = ""
            self._retrying = None
            return

    async def _stop_retrying(self) -> None:
        task, self._retrying = self._retrying, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
