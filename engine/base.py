"""The engine contract: a handful of async methods, so a fake engine is cheap.

vLLM is imported only inside `engine.vllm_engine` (and torch inside
`engine.demo_model`); nothing in `engine/` imports the bot or its adapters.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Protocol

from engine.registry import ModelSpec
from engine.types import ChatMessage, EngineStats, ReplyChunk, Sampling


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


__all__ = ["ChatMessage", "Engine", "EngineStats", "ReplyChunk", "Sampling"]
