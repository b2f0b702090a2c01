"""The engine contract: a handful of async methods, so a fake engine is cheap.

vLLM is imported only inside `engine.vllm_engine`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bot.messages import ChatMessage
from bot.registry import ModelSpec


@dataclass(frozen=True, slots=True)
class Sampling:
    """How one reply is sampled. Defaults come from our reference deployments."""

    temperature: float = 0.7
    top_p: float = 0.9
    repetition_penalty: float = 1.15
    max_tokens: int = 512
    ignore_eos: bool = False
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class ReplyChunk:
    """A piece of a streamed reply; the last one has `finished` set and the counts."""

    text: str
    finished: bool = False
    finish_reason: str | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0
    reply_tokens: int = 0


@dataclass(slots=True)
class EngineStats:
    """Counters for `/status`; the engine owns and updates them."""

    model: str = ""
    quantization: str = "none"
    state: str = "stopped"
    running: int = 0
    replies: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    reply_tokens: int = 0
    started_at: float = field(default_factory=time.monotonic)

    @property
    def hit_rate(self) -> float:
        """Share of prompt tokens served from the prefix cache."""
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    def record(self, chunk: ReplyChunk) -> None:
        self.replies += 1
        self.prompt_tokens += chunk.prompt_tokens
        self.cached_tokens += chunk.cached_tokens
        self.reply_tokens += chunk.reply_tokens


class Engine(Protocol):
    """Streams chat replies from one model at a time."""

    @property
    def spec(self) -> ModelSpec: ...

    @property
    def max_model_len(self) -> int: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def stream(
        self, messages: Sequence[ChatMessage], sampling: Sampling
    ) -> AsyncGenerator[ReplyChunk, None]:
        """Stream a reply. Closing or cancelling the iterator aborts the request."""
        ...

    async def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Prompt tokens for `messages` rendered with the model's chat template."""
        ...

    async def switch(self, spec: ModelSpec) -> None:
        """Replace the served model; on failure the previous model keeps serving."""
        ...

    def stats(self) -> EngineStats: ...
