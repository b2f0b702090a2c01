"""What a replicated engine tells `/model` and `/status` about its servers.

Values and a protocol only: the core can read them without loading the HTTP client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class ServerMetrics:
    """A vLLM server's own figures from `/metrics` (summed over its engines); totals since it started."""

    prefix_cache_queries: int
    prefix_cache_hits: int
    running: int
    waiting: int
    kv_cache_usage: float

    @property
    def hit_rate(self) -> float:
        """Share of prompt tokens its prefix cache served (0.0-1.0)."""
        return self.prefix_cache_hits / self.prefix_cache_queries if self.prefix_cache_queries else 0.0


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """One replica as `/status` shows it. `metrics` is None when the server has no vLLM
    `/metrics` (llama.cpp, Ollama) or did not answer."""

    url: str
    healthy: bool
    models: tuple[str, ...]
    replies: int
    last_error: str
    down_for_s: float | None
    metrics: ServerMetrics | None


@runtime_checkable
class Replicated(Protocol):
    """An engine served by remote replicas (`engine.remote.RemoteEngine`)."""

    async def served_models(self) -> list[str]:
        """Every model the healthy replicas serve."""
        ...

    async def replicas(self) -> list[ReplicaStatus]:
        """Each replica's health and, where the server is vLLM, its prefix cache and queue."""
        ...
