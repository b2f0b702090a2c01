"""`hearth bench affinity`: the prefix cache across replicas, with and without conversation affinity.

The `hearth bench cache` workload (C channels hold T-turn conversations through the
pipeline, channels at once, turns in order) runs through the remote engine three
times against real vLLM servers: one replica alone (the single-engine figure), two
with affinity (each conversation on its rendezvous replica), and two with
round-robin (each request to the next replica). Each turn's channels arrive in a
shuffled order, as real messages do. The hit rate of turns 2..T is read from each
server's own `/metrics` (`vllm:prefix_cache_hits` / `vllm:prefix_cache_queries`),
and the caches are reset between runs (`POST /reset_prefix_cache`, vLLM's dev mode).

Without `--urls`, two local servers are started on the benchmark's model and
stopped afterwards; each takes about 1 GB and 25-40 s to start on a 2-core CPU.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2

from bench.harness import BenchChannel, bench_app, channel_message
from bench.servers import VllmServer
from bench.workload import text_for
from bot.app.builder import build_remote_engine
from bot.app.settings import Settings
from engine.affinity import Routing
from engine.errors import ModelLoadError
from engine.fleet import ReplicaStatus
from engine.models import ModelResolver
from engine.registry import Registry
from engine.remote import RemoteEngine
from engine.replica import normalise_url

DEFAULT_CHANNELS = 16
DEFAULT_TURNS = 10
DEFAULT_REPLY_TOKENS = 32
DEFAULT_SEED = 7
REPLICAS = 2
LOCAL_KV_CACHE_GIB = 1.0
COUNTER_SETTLE_S = 0.5  # vLLM's counters arrive with the engine's next output batch
# (name, replicas used, routing)
MODES: tuple[tuple[str, int, Routing], ...] = (
    ("single", 1, "affinity"),
    ("affinity", REPLICAS, "affinity"),
    ("round-robin", REPLICAS, "round-robin"),
)


@dataclass(frozen=True, slots=True)
class AffinityPlan:
    channels: int = DEFAULT_CHANNELS
    turns: int = DEFAULT_TURNS
    reply_tokens: int = DEFAULT_REPLY_TOKENS
    urls: tuple[str, ...] = ()  # running servers; empty: start two local ones
    seed: int = DEFAULT_SEED


@dataclass(frozen=True, slots=True)
class ReplicaFigures:
    """One replica over turns 2..T of one run."""

    url: str
    queries: int
    hits: int
    replies: int

    @property
    def hit_rate(self) -> float:
        return self.hits / self.queries if self.queries else 0.0

    def to_json(self) -> dict[str, object]:
        return {"url": self.url, "hit_rate": round(self.hit_rate, 4), "prefix_cache_queries": self.queries,
                "prefix_cache_hits": self.hits, "replies": self.replies}


@dataclass(frozen=True, slots=True)
class ModeResult:
    mode: str
    model: str
    routing: Routing
    replicas: tuple[ReplicaFigures, ...]
    cache_reset: bool

    @property
    def hit_rate(self) -> float:
        queries = sum(r.queries for r in self.replicas)
        return sum(r.hits for r in self.replicas) / queries if queries else 0.0

    def to_json(self) -> dict[str, object]:
        return {"hit_rate": round(self.hit_rate, 4), "routing": self.routing, "cache_reset": self.cache_reset,
                "replicas": [r.to_json() for r in self.replicas]}


@dataclass(frozen=True, slots=True)
class AffinityResult:
    model: str
    channels: int
    turns: int
    reply_tokens: int
    modes: tuple[ModeResult, ...]

    def rate(self, mode: str) -> float:
        return next(m.hit_rate for m in self.modes if m.mode == mode)

    def to_json(self) -> dict[str, object]:
        single = self.rate("single")
        return {
            "benchmark": "affinity",
            "model": self.model,
            "channels": self.channels,
            "turns": self.turns,
            "reply_tokens": self.reply_tokens,
            "single_hit_rate": round(single, 4),
            "affinity_hit_rate": round(self.rate("affinity"), 4),
            "round_robin_hit_rate": round(self.rate("round-robin"), 4),
            "affinity_vs_single": round(self.rate("affinity") / single, 4) if single else None,
            "round_robin_vs_single": round(self.rate("round-robin") / single, 4) if single else None,
            "modes": {m.mode: m.to_json() for m in self.modes},
        }


async def run_affinity(settings: Settings, plan: AffinityPlan) -> AffinityResult:
    """The three runs, against `plan.urls` or two local servers started for them."""
    async with replicas(settings, plan.urls) as urls:
        results = [await _run_mode(settings, plan, name, urls[:n], routing) for name, n, routing in MODES]
    return AffinityResult(results[0].model, plan.channels, plan.turns, plan.reply_tokens, tuple(results))


@asynccontextmanager
async def replicas(settings: Settings, urls: Sequence[str]) -> AsyncIterator[tuple[str, ...]]:
    """`urls`, or two local vLLM servers on the settings' model, stopped on exit."""
    if urls:
        yield tuple(normalise_url(u) for u in urls)
        return
    spec = Registry.load(settings.models_file).lookup(settings.model)
    source = await asyncio.to_thread(ModelResolver(settings.data_dir), spec)
    length = settings.max_model_len or spec.max_model_len
    with tempfile.TemporaryDirectory(prefix="hearth-affinity-") as tmp:
        servers = [
            VllmServer(str(source), spec.name, Path(tmp) / f"replica{i}.log", max_model_len=length,
                       kv_cache_gib=settings.kv_cache_gib or LOCAL_KV_CACHE_GIB)
            for i in range(REPLICAS)
        ]
        async with AsyncExitStack() as stack:
            try:
                await asyncio.gather(*(stack.enter_async_context(s) for s in servers))
            except RuntimeError as exc:
                raise ModelLoadError(spec.name, str(exc)) from exc
            yield tuple(s.url for s in servers)


async def _run_mode(
    settings: Settings, plan: AffinityPlan, mode: str, urls: Sequence[str], routing: Routing
) -> ModeResult:
    reset = await reset_caches(urls)
    remote = settings.model_copy(update={"engine_urls": tuple(urls), "engine_routing": routing})
    async with build_remote_engine(remote) as engine:
        before: dict[str, ReplicaStatus] = {}
        async with bench_app(settings, engine, plan.reply_tokens) as app:
            channel, order = BenchChannel(), random.Random(plan.seed)
            for turn in range(plan.turns):
                if turn == 1:
                    before = await settled(engine)
                channels = list(range(plan.channels))
                order.shuffle(channels)
                await asyncio.gather(*(
                    app.pipeline.handle(channel_message(f"a{mode}", c, text_for(c, turn), turn), channel)
                    for c in channels
                ))
        after = await settled(engine)
    figures = tuple(_delta(before[url], after[url]) for url in after)
    return ModeResult(mode, engine.spec.name, routing, figures, reset)


async def settled(engine: RemoteEngine) -> dict[str, ReplicaStatus]:
    """Each replica's status once the servers' counters have caught up."""
    await asyncio.sleep(COUNTER_SETTLE_S)
    return {s.url: s for s in await engine.replicas()}


async def reset_caches(urls: Sequence[str]) -> bool:
    """Empty every replica's prefix cache; False when a server refuses (not in dev mode)."""
    async with httpx2.AsyncClient(timeout=30.0) as client:
        answers = await asyncio.gather(
            *(client.post(f"{normalise_url(u).removesuffix('/v1')}/reset_prefix_cache") for u in urls),
            return_exceptions=True,
        )
    return all(isinstance(a, httpx2.Response) and a.is_success for a in answers)


def _delta(before: ReplicaStatus, after: ReplicaStatus) -> ReplicaFigures:
    if before.metrics is None or after.metrics is None:
        raise ModelLoadError(after.url, "the server has no vLLM /metrics to read the prefix cache from")
    return ReplicaFigures(
        after.url,
        after.metrics.prefix_cache_queries - before.metrics.prefix_cache_queries,
        after.metrics.prefix_cache_hits - before.metrics.prefix_cache_hits,
        after.replies - before.replies,
    )
