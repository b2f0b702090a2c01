"""Hearth's Prometheus metrics: counters and histograms the pipeline moves, gauges read at scrape.

Each `Metrics` has a registry of its own (an App builds one, and tests build many
apps in one process); the endpoint (`bot.app.metrics_server`) serves it beside
prometheus_client's default registry, where vLLM's in-process engine keeps its own
metrics (`vllm:*`). The gate and the engine are metered by wrapping them
(`MeteredGate`, `TimedEngine`), so neither knows about metrics.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.errors import DeliveryError
from bot.messages import ConversationKey, Verdict
from bot.moderation import Direction, Gate
from bot.moderation.gate import CATEGORIES, CLASSIFIER_CATEGORY
from engine.base import Engine
from engine.registry import ModelSpec
from engine.types import ChatMessage, EngineStats, ReplyChunk, Sampling

LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0,
                   60.0, 120.0)
ENGINE_STATES = ("ready", "loading", "restarting", "stalled", "failed", "stopped")
NO_CATEGORY = "none"
# Every label value a counter takes, so that each series exists at zero from the start (a
# dashboard shows 0 on a quiet bot, not "No data"; `rate()` sees the first event).
REFUSAL_REASONS = ("rate_user", "rate_channel", "tokens_user", "tokens_channel", "moderation", "too_long",
                   "delivery", "access", "error")
QUEUE_OUTCOMES = ("merged", "dropped")
QUOTA_LIMITS = (("user", "rate"), ("channel", "rate"), ("user", "tokens"), ("channel", "tokens"))
TOKEN_KINDS = ("prompt", "cached", "reply")
DIRECTIONS = ("input", "output")
NO_CONNECTION = "0"  # hearth_delivery_errors_total's status when the platform could not be reached


class Metrics:
    """Every metric Hearth keeps, in `registry`; label values are platforms, reasons, layers."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.received = Counter("hearth_messages_received", "Messages addressed to the bot (stored first)",
                                ["platform"], registry=r)
        self.answered = Counter("hearth_messages_answered", "Messages answered (a refusal by the output "
                                "gate is an answer)", ["platform"], registry=r)
        self.refused = Counter("hearth_messages_refused", "Messages not answered, by reason: rate_user, "
                               "rate_channel, tokens_user, tokens_channel, moderation, too_long, "
                               "delivery, error", ["platform", "reason"], registry=r)
        self.queued = Counter("hearth_queue_messages", "Messages that waited behind a reply: merged into "
                              "the author's next one, or dropped past the bound", ["platform", "outcome"],
                              registry=r)
        self.quota_refusals = Counter("hearth_quota_refusals", "Messages a quota refused",
                                      ["platform", "scope", "kind"], registry=r)
        self.first_token = Histogram("hearth_time_to_first_token_seconds", "From asking the engine for a "
                                     "reply to its first token", buckets=LATENCY_BUCKETS, registry=r)
        self.reply_duration = Histogram("hearth_reply_duration_seconds", "From a message stored to its "
                                        "reply complete (waiting included)", ["platform"],
                                        buckets=LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("hearth_tokens", "Tokens of answered messages: prompt, cached (of the prompt, "
                              "from the prefix cache), reply", ["platform", "kind"], registry=r)
        self.verdicts = Counter("hearth_moderation_verdicts", "Moderation checks (a streamed reply is "
                                "checked at each update), by category when flagged",
                                ["direction", "layer", "category", "flagged"], registry=r)
        self.delivery_errors = Counter("hearth_delivery_errors", "Sends and edits a platform did not take "
                                       "(status 0: no connection)", ["platform", "status"], registry=r)
        self._children: dict[tuple[Counter | Histogram, tuple[str, ...]], Any] = {}

    def labelled(self, metric: Counter | Histogram, *values: str) -> Any:
        """`metric.labels(*values)`, looked up once: prometheus_client validates the values
        and takes a lock at every call (about 4 µs; 9 calls an answered message)."""
        key = (metric, values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def prepare(self, platforms: Sequence[str]) -> None:
        """Create every labelled series at zero for `platforms` (see REFUSAL_REASONS): each
        platform's counts, and the verdicts the layered gate gives (allowed by the word lists
        or the classifier, flagged by a word list in any category, by the classifier, by the
        leak check)."""
        for platform in platforms:
            for counter in (self.received, self.answered):
                counter.labels(platform)
            self.reply_duration.labels(platform)
            self.delivery_errors.labels(platform, NO_CONNECTION)
            for reason in REFUSAL_REASONS:
                self.refused.labels(platform, reason)
            for outcome in QUEUE_OUTCOMES:
                self.queued.labels(platform, outcome)
            for scope, kind in QUOTA_LIMITS:
                self.quota_refusals.labels(platform, scope, kind)
            for kind in TOKEN_KINDS:
                self.tokens.labels(platform, kind)
        for direction in DIRECTIONS:
            for layer in ("wordlist", "classifier"):
                self.verdicts.labels(direction, layer, NO_CATEGORY, "false")
            for category in CATEGORIES:
                self.verdicts.labels(direction, "wordlist", category, "true")
            self.verdicts.labels(direction, "classifier", CLASSIFIER_CATEGORY, "true")
        self.verdicts.labels("output", "leak", NO_CATEGORY, "true")

    def watch(self, engine_stats: Callable[[], EngineStats], queue_depth: Callable[[], int]) -> None:
        """Read the engine's state and counters and the queue's depth at every scrape."""
        self.registry.register(_Live(engine_stats, queue_depth))

    def refuse(self, platform: str, reason: str) -> None:
        self.labelled(self.refused, platform, reason).inc()

    def verdict(self, direction: str, verdict: Verdict) -> None:
        flagged = "true" if verdict.flagged else "false"
        categories = [c for c, on in verdict.categories.items() if on] if verdict.flagged else []
        for category in categories or [NO_CATEGORY]:
            self.labelled(self.verdicts, direction, verdict.layer, category, flagged).inc()

    def delivery_failed(self, error: DeliveryError) -> None:
        self.labelled(self.delivery_errors, error.platform, str(error.status)).inc()

    def answered_with(self, platform: str, seconds: float, final: ReplyChunk | None) -> None:
        """One answer, `seconds` after its message was stored; its tokens when the engine gave them."""
        self.labelled(self.answered, platform).inc()
        self.labelled(self.reply_duration, platform).observe(seconds)
        if final is not None:
            self.labelled(self.tokens, platform, "prompt").inc(final.prompt_tokens)
            self.labelled(self.tokens, platform, "cached").inc(final.cached_tokens)
            self.labelled(self.tokens, platform, "reply").inc(final.reply_tokens)


class _Live(Collector):
    """Gauges read when scraped: queue depth, engine state, replies generating, prefix-cache
    hit rate, engine restarts."""

    def __init__(self, engine_stats: Callable[[], EngineStats], queue_depth: Callable[[], int]) -> None:
        self._engine_stats = engine_stats
        self._queue_depth = queue_depth

    def collect(self) -> Iterator[Metric]:
        stats = self._engine_stats()
        yield GaugeMetricFamily("hearth_queue_depth", "Replies to come: conversations answering now and "
                                "turns waiting their turn", value=self._queue_depth())
        yield GaugeMetricFamily("hearth_engine_generating", "Replies the engine is generating",
                                value=stats.running)
        state = GaugeMetricFamily("hearth_engine_state", "1 for the engine's current state",
                                  labels=["model", "state"])
        for name in sorted({*ENGINE_STATES, stats.state}):
            state.add_metric([stats.model, name], 1.0 if name == stats.state else 0.0)
        yield state
        yield CounterMetricFamily("hearth_engine_restarts", "Engine restarts since Hearth started",
                                  value=stats.restarts)
        yield GaugeMetricFamily("hearth_prefix_cache_hit_rate", "Share of prompt tokens served from the "
                                "prefix cache since the engine started", value=stats.hit_rate)

    def describe(self) -> Iterator[Metric]:
        return iter(())  # collected only at scrape time: the stats may not exist yet at registration


class MeteredGate:
    """A gate that counts every verdict, and input refusals as refused messages."""

    def __init__(self, gate: Gate, metrics: Metrics) -> None:
        self._gate = gate
        self._metrics = metrics

    async def check(
        self, text: str, direction: Direction, key: ConversationKey, system_prompt: str = ""
    ) -> Verdict:
        verdict = await self._gate.check(text, direction, key, system_prompt)
        self._metrics.verdict(direction, verdict)
        if direction == "input" and verdict.flagged:
            self._metrics.refuse(key.platform, "moderation")
        return verdict


class TimedEngine:
    """An engine whose replies are timed to their first token; the rest passes through."""

    def __init__(
        self, engine: Engine, metrics: Metrics, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self._engine = engine
        self._metrics = metrics
        self._clock = clock

    @property
    def spec(self) -> ModelSpec:
        return self._engine.spec

    @property
    def max_model_len(self) -> int:
        return self._engine.max_model_len

    async def start(self) -> None:
        await self._engine.start()

    async def close(self) -> None:
        await self._engine.close()

    def stream(self, messages: Sequence[ChatMessage], sampling: Sampling) -> AsyncGenerator[ReplyChunk, None]:
        return _TimedToFirst(self._engine.stream(messages, sampling), self._metrics.first_token.observe,
                             self._clock)

    async def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return await self._engine.count_tokens(messages)

    async def switch(self, spec: ModelSpec) -> None:
        await self._engine.switch(spec)

    def stats(self) -> EngineStats:
        return self._engine.stats()


class _TimedToFirst(AsyncGenerator[ReplyChunk, None]):
    """`chunks` as they come, the wait for the first one observed (seconds). Every later
    read is the inner generator's own `__anext__`, so timing adds no layer per token.
    Closing this closes `chunks`."""

    __slots__ = ("_chunks", "_clock", "_observe", "_started")

    def __init__(self, chunks: AsyncGenerator[ReplyChunk, None], observe: Callable[[float], None],
                 clock: Callable[[], float]) -> None:
        self._chunks = chunks
        self._observe = observe
        self._clock = clock
        self._started: float | None = clock()

    def __anext__(self) -> Coroutine[Any, Any, ReplyChunk]:
        if self._started is None:
            return self._chunks.__anext__()
        return self._first()

    async def _first(self) -> ReplyChunk:
        chunk = await self._chunks.__anext__()
        if self._started is not None:
            self._observe(self._clock() - self._started)
            self._started = None
        return chunk

    def asend(self, value: None) -> Coroutine[Any, Any, ReplyChunk]:
        return self._chunks.asend(value)

    def athrow(self, *args: Any) -> Coroutine[Any, Any, ReplyChunk]:
        return self._chunks.athrow(*args)

    def aclose(self) -> Coroutine[Any, Any, None]:
        return self._chunks.aclose()
