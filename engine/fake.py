"""An engine that answers instantly from a script, for fast tests and benchmarks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from functools import lru_cache

from engine.errors import EngineUnavailableError, ModelLoadError, PromptTooLongError
from engine.reasoning import split_reasoning
from engine.registry import ModelSpec
from engine.types import ChatMessage, EngineStats, ReplyChunk, Sampling

# Messages whose word counts are remembered: each turn's prompt repeats the last one's
# messages, and a real engine tokenises only the new ones (`engine.segments`).
COUNTS_KEPT = 65_536

Script = Callable[[Sequence[ChatMessage]], list[str]]


def echo_script(messages: Sequence[ChatMessage]) -> list[str]:
    """Reply with the last user message, one word per chunk."""
    words = f"echo: {messages[-1].content}".split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


class FakeEngine:
    """Counts a token per whitespace-separated word; never touches a model.

    `script`, `delay` and `available` are the test's to change at any time: they
    decide what the next reply says, how fast it streams, and whether it fails."""

    def __init__(
        self,
        spec: ModelSpec,
        script: Script = echo_script,
        *,
        delay: float = 0.0,
        fail_models: frozenset[str] = frozenset(),
    ) -> None:
        self._spec = spec
        self.script = script
        self.delay = delay
        self._fail_models = fail_models
        self._stats = EngineStats(model=spec.name, quantization=spec.quantization)
        self.prompts: list[list[ChatMessage]] = []
        self.available = True
        self.dead = False
        self.restarts = 0

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    @property
    def max_model_len(self) -> int:
        return self._spec.max_model_len

    async def start(self) -> None:
        if self._spec.name in self._fail_models:
            raise ModelLoadError(self._spec.name, "scripted failure")
        self._stats.state = "ready"
        self.dead = False

    def alive(self) -> bool:
        return not self.dead

    def pids(self) -> list[int]:
        """The fake runs in this process: no engine processes of its own."""
        return []

    def crash(self) -> None:
        """Die as vLLM's engine core does: every request fails until `restart()`."""
        self.dead = True
        self._stats.state = "failed"

    async def restart(self) -> None:
        self.restarts += 1
        if self.spec.name in self._fail_models:
            raise ModelLoadError(self.spec.name, "scripted failure")
        await self.start()

    async def close(self) -> None:
        self._stats.state = "stopped"

    async def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """A token per word, 4 per message and 2 per prompt."""
        return sum(_words(m.content) for m in messages) + 4 * len(messages) + 2

    async def stream(
        self, messages: Sequence[ChatMessage], sampling: Sampling
    ) -> AsyncGenerator[ReplyChunk, None]:
        chunks = self._stream(messages, sampling)
        if self._spec.reasoning:
            chunks = split_reasoning(chunks, self._spec.reasoning)
        async with aclosing(chunks):
            async for chunk in chunks:
                yield chunk

    async def _stream(
        self, messages: Sequence[ChatMessage], sampling: Sampling
    ) -> AsyncGenerator[ReplyChunk, None]:
        if not self.available or self.dead:
            raise EngineUnavailableError("fake engine is down")
        prompt_tokens = await self.count_tokens(messages)
        if prompt_tokens > self.max_model_len:
            raise PromptTooLongError(prompt_tokens, self.max_model_len)
        self.prompts.append(list(messages))
        script = self.script(messages)
        pieces = script[: sampling.max_tokens]
        reason = "length" if len(script) > len(pieces) else "stop"
        self._stats.running += 1
        try:
            for piece in pieces:
                if self.delay:
                    await asyncio.sleep(self.delay)
                if self.dead:
                    raise EngineUnavailableError("fake engine died")
                yield ReplyChunk(piece)
        finally:
            self._stats.running -= 1
        final = ReplyChunk("", True, reason, prompt_tokens, 0, len(pieces))
        self._stats.record(final)
        yield final

    async def switch(self, spec: ModelSpec) -> None:
        if spec.name in self._fail_models:
            raise ModelLoadError(spec.name, "scripted failure")
        self.dead = False  # a fresh load
        self._stats.state = "ready"
        self._spec = spec
        self._stats.model, self._stats.quantization = spec.name, spec.quantization

    def stats(self) -> EngineStats:
        return self._stats


@lru_cache(maxsize=COUNTS_KEPT)
def _words(text: str) -> int:
    return len(text.split())
