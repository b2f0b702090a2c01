"""`hearth bench throughput`: N channels at once, through Hearth, straight to vLLM, and one by one.

Three designs answer the same first messages with replies of the same fixed length:

- pipeline: `App.pipeline.handle` for every channel at once (store, gate, prompt,
  streamed reply with platform-paced edits) on the real engine;
- raw: the same prompts sent to the same engine at once with no bot around them;
- sequential: the same prompts answered one after another by transformers
  `generate` (see `bench.sequential`).

Every run uses fresh channels whose persona names them, so no run can reuse
another's cached prompt blocks: all designs prefill every prompt in full.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench.harness import (
    PLATFORM_EDIT_INTERVAL_S,
    BenchChannel,
    bench_app,
    channel_message,
    fixed_length,
)
from bench.memory import MemorySample, sample_memory
from bench.sequential import GenerateJob, SequentialRun, run_sequential
from bench.workload import first_turn_prompt, text_for
from bot.app.builder import App
from bot.app.settings import Settings
from bot.messages import IncomingMessage
from engine.base import Engine
from engine.models import ModelResolver
from engine.sampling import HEARTH_DEFAULTS, explicit
from engine.types import ChatMessage, EngineStats, Sampling

DEFAULT_CHANNELS = (1, 8, 32, 64)
DEFAULT_REPLY_TOKENS = 64
DEFAULT_REPEATS = 3


@dataclass(frozen=True, slots=True)
class Rate:
    """One design's run: tokens and replies generated in `seconds` of wall time."""

    tokens: int
    replies: int
    seconds: float

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    @property
    def replies_per_s(self) -> float:
        return self.replies / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, float]:
        return {
            "tokens": self.tokens,
            "replies": self.replies,
            "seconds": round(self.seconds, 4),
            "tokens_per_s": round(self.tokens_per_s, 2),
            "replies_per_s": round(self.replies_per_s, 3),
        }


@dataclass(frozen=True, slots=True)
class ThroughputPoint:
    channels: int
    pipeline: Rate
    raw: Rate
    sequential: Rate | None

    @property
    def speedup_vs_sequential(self) -> float | None:
        if self.sequential is None or not self.sequential.tokens_per_s:
            return None
        return self.pipeline.tokens_per_s / self.sequential.tokens_per_s

    @property
    def pipeline_vs_raw(self) -> float:
        return self.pipeline.tokens_per_s / self.raw.tokens_per_s if self.raw.tokens_per_s else 0.0

    def to_json(self) -> dict[str, object]:
        speedup = self.speedup_vs_sequential
        return {
            "channels": self.channels,
            "pipeline": self.pipeline.to_json(),
            "raw": self.raw.to_json(),
            "sequential": self.sequential.to_json() if self.sequential else None,
            "speedup_vs_sequential": None if speedup is None else round(speedup, 2),
            "pipeline_vs_raw": round(self.pipeline_vs_raw, 3),
        }


@dataclass(frozen=True, slots=True)
class ThroughputResult:
    model: str
    reply_tokens: int
    edit_interval_s: float
    repeats: int
    points: tuple[ThroughputPoint, ...]
    memory_idle: MemorySample
    memory_after: MemorySample
    sequential_threads: int | None
    prompt_tokens: int | None  # of the first prompt; every prompt is about as long

    def to_json(self) -> dict[str, object]:
        return {
            "benchmark": "throughput",
            "model": self.model,
            "reply_tokens": self.reply_tokens,
            "prompt_tokens": self.prompt_tokens,
            "edit_interval_s": self.edit_interval_s,
            "repeats": self.repeats,
            "sequential_torch_threads": self.sequential_threads,
            "points": [p.to_json() for p in self.points],
        }

    def memory_json(self) -> dict[str, object]:
        """Memory is sampled around the throughput run: the bot idle, then after it."""
        return {
            "benchmark": "memory",
            "bot_rss_idle_mb": round(self.memory_idle.bot_rss_mb, 1),
            "bot_rss_after_throughput_mb": round(self.memory_after.bot_rss_mb, 1),
            "engine_rss_idle_mb": round(self.memory_idle.children_rss_mb, 1),
            "engine_rss_after_throughput_mb": round(self.memory_after.children_rss_mb, 1),
        }


@dataclass(frozen=True, slots=True)
class ThroughputPlan:
    channels: tuple[int, ...] = DEFAULT_CHANNELS
    reply_tokens: int = DEFAULT_REPLY_TOKENS
    repeats: int = DEFAULT_REPEATS
    edit_interval: float = PLATFORM_EDIT_INTERVAL_S
    sequential: bool = True  # False skips the transformers design (it needs the model's files)


async def run_throughput(settings: Settings, engine: Engine, plan: ThroughputPlan) -> ThroughputResult:
    """Measure all three designs at each channel count, on an already started engine."""
    idle = sample_memory()
    async with bench_app(settings, engine, plan.reply_tokens) as app:
        await _warm_up(app, plan)
        runs = [await _measure_vllm(app, n, plan) for n in plan.channels]
        after = sample_memory()
        sequential = await _sequential(app, max(plan.channels), plan)
    points = tuple(
        ThroughputPoint(n, pipeline, raw, _prefix_rate(sequential, n))
        for n, (pipeline, raw) in zip(plan.channels, runs, strict=True)
    )
    return ThroughputResult(
        engine.spec.name, plan.reply_tokens, plan.edit_interval, plan.repeats, points, idle, after,
        sequential.threads if sequential else None,
        sequential.timings[0].prompt_tokens if sequential else None,
    )


async def _measure_vllm(app: App, n: int, plan: ThroughputPlan) -> tuple[Rate, Rate]:
    """Median of `repeats` runs per design, alternating which goes first."""
    pipeline: list[Rate] = []
    raw: list[Rate] = []
    for repeat in range(plan.repeats):
        first_raw = repeat % 2 == 0
        for design in ("raw", "pipeline") if first_raw else ("pipeline", "raw"):
            tag = f"{design[0]}{n:02d}{repeat}"
            if design == "raw":
                raw.append(await raw_run(app, _messages(tag, n), plan.reply_tokens))
            else:
                pipeline.append(await pipeline_run(app, _messages(tag, n), plan.edit_interval))
    return _median(pipeline), _median(raw)


def _messages(tag: str, n: int) -> list[IncomingMessage]:
    return [channel_message(tag, i, text_for(i)) for i in range(n)]


async def pipeline_run(app: App, messages: Sequence[IncomingMessage], edit_interval: float) -> Rate:
    """Every message through the app's pipeline at once; returns when every reply is complete."""
    channel = BenchChannel(edit_interval)
    before = _counts(app.models.stats())
    start = time.perf_counter()
    await asyncio.gather(*(app.pipeline.handle(msg, channel) for msg in messages))
    return _rate(before, app.models.stats(), time.perf_counter() - start)


async def raw_run(app: App, messages: Sequence[IncomingMessage], reply_tokens: int) -> Rate:
    """The same prompts straight to the app's engine, concurrently, nothing else."""
    prompts = [await first_turn_prompt(app.personas, msg) for msg in messages]
    sampling = fixed_length(app.settings, reply_tokens)
    before = _counts(app.models.stats())
    start = time.perf_counter()

    async def one(prompt: list[ChatMessage]) -> None:
        async for _ in app.engine.stream(prompt, sampling):
            pass

    await asyncio.gather(*(one(p) for p in prompts))
    return _rate(before, app.models.stats(), time.perf_counter() - start)


async def _warm_up(app: App, plan: ThroughputPlan) -> None:
    """One untimed reply through each design, so no timed run pays for first-use costs."""
    await raw_run(app, _messages("warm", 1), plan.reply_tokens)
    await pipeline_run(app, _messages("wpip", 1), 0.0)


async def _sequential(app: App, n: int, plan: ThroughputPlan) -> SequentialRun | None:
    if not plan.sequential:
        return None
    source = await asyncio.to_thread(ModelResolver(app.settings.data_dir), app.models.spec)
    prompts = [await first_turn_prompt(app.personas, msg) for msg in _messages(f"s{n:02d}0", n)]
    job = GenerateJob(
        str(source),
        tuple(tuple((m.role, m.content) for m in prompt) for prompt in prompts),
        as_served(fixed_length(app.settings, plan.reply_tokens), app.models.stats()),
    )
    return await asyncio.to_thread(run_sequential, job)


def as_served(sampling: Sampling, stats: EngineStats) -> Sampling:
    """`sampling` with the values the engine fills in (the model's recommendation) made
    explicit, so transformers samples as vLLM does."""
    values = {**(stats.sampling or HEARTH_DEFAULTS), **explicit(sampling)}
    return dataclasses.replace(
        sampling, temperature=values["temperature"], top_p=values["top_p"],
        repetition_penalty=values["repetition_penalty"],
    )


def _prefix_rate(run: SequentialRun | None, n: int) -> Rate | None:
    """The first `n` prompts answered one after another: their times add up."""
    if run is None:
        return None
    chosen = run.timings[:n]
    return Rate(sum(t.tokens for t in chosen), len(chosen), sum(t.seconds for t in chosen))


def _counts(stats: EngineStats) -> tuple[int, int]:
    return stats.reply_tokens, stats.replies


def _rate(before: tuple[int, int], stats: EngineStats, seconds: float) -> Rate:
    tokens, replies = _counts(stats)
    return Rate(tokens - before[0], replies - before[1], seconds)


def _median(rates: list[Rate]) -> Rate:
    return sorted(rates, key=lambda r: r.tokens_per_s)[len(rates) // 2]
