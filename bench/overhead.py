"""`hearth bench overhead`: the bot's own cost per message, with an engine that answers instantly.

Everything but the model runs for real: SqliteStore, the moderation gate, prompt
building, the streamed reply and the reply channel's send/edit. The process is pinned
to one core while it runs, so messages/s means messages per second of one core.
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.harness import PLATFORM_EDIT_INTERVAL_S, BenchChannel, bench_app, channel_message
from bench.stats import percentile
from bench.workload import text_for
from bot.app.builder import App
from bot.app.settings import Settings
from engine.fake import FakeEngine
from engine.registry import Registry

DEFAULT_MESSAGES = 2000
DEFAULT_CHANNELS = 50
PROFILE_MESSAGES = 500
PROFILE_TOP = 15
WARMUP_MESSAGES = 20
BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent


@dataclass(frozen=True, slots=True)
class ProfileRow:
    function: str
    calls: int
    own_ms: float
    cumulative_ms: float
    per_message_us: float


@dataclass(frozen=True, slots=True)
class OverheadResult:
    messages: int
    channels: int
    edit_interval_s: float
    pinned_cores: int
    messages_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_message: float
    concurrent_messages_per_s: float
    sends: int
    edits: int
    profile: tuple[ProfileRow, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "benchmark": "overhead",
            "messages": self.messages,
            "channels": self.channels,
            "edit_interval_s": self.edit_interval_s,
            "pinned_cores": self.pinned_cores,
            "messages_per_s": round(self.messages_per_s, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "cpu_ms_per_message": round(self.cpu_ms_per_message, 3),
            "concurrent_messages_per_s": round(self.concurrent_messages_per_s, 1),
            "sends": self.sends,
            "edits": self.edits,
            "profile": [_row_json(row) for row in self.profile],
        }


@dataclass(frozen=True, slots=True)
class OverheadPlan:
    messages: int = DEFAULT_MESSAGES
    channels: int = DEFAULT_CHANNELS
    edit_interval: float = PLATFORM_EDIT_INTERVAL_S
    profile_messages: int = PROFILE_MESSAGES
    reply_words: int = 32


async def run_overhead(settings: Settings, plan: OverheadPlan) -> OverheadResult:
    """Sequential latency, concurrent rate and a profile, each on its own fresh store."""
    with pinned_to_one_core() as cores:
        sequential = await _measured(settings, plan, concurrent=False)
        concurrent = await _measured(settings, plan, concurrent=True)
        profile = await _profiled(settings, plan)
    return OverheadResult(
        messages=plan.messages,
        channels=plan.channels,
        edit_interval_s=plan.edit_interval,
        pinned_cores=cores,
        messages_per_s=plan.messages / sequential.seconds,
        p50_ms=percentile(sequential.latencies, 50) * 1000,
        p99_ms=percentile(sequential.latencies, 99) * 1000,
        cpu_ms_per_message=sequential.cpu_seconds / plan.messages * 1000,
        concurrent_messages_per_s=plan.messages / concurrent.seconds,
        sends=sequential.channel.sends,
        edits=sequential.channel.edits,
        profile=profile,
    )


@dataclass(frozen=True, slots=True)
class _Run:
    latencies: list[float]
    seconds: float
    cpu_seconds: float  # every thread of the process: the pipeline and SQLite's worker
    channel: BenchChannel


async def _measured(settings: Settings, plan: OverheadPlan, *, concurrent: bool) -> _Run:
    """`plan.messages` messages on a fresh store, after a few untimed ones."""
    async with instant_app(settings, plan.reply_words) as app:
        await _drive(app, BenchChannel(plan.edit_interval), "warm", WARMUP_MESSAGES, plan.channels, False)
        channel = BenchChannel(plan.edit_interval)
        cpu, start = time.process_time(), time.perf_counter()
        latencies = await _drive(app, channel, "run", plan.messages, plan.channels, concurrent)
        return _Run(latencies, time.perf_counter() - start, time.process_time() - cpu, channel)


async def _profiled(settings: Settings, plan: OverheadPlan) -> tuple[ProfileRow, ...]:
    async with instant_app(settings, plan.reply_words) as app:
        channel = BenchChannel(plan.edit_interval)
        await _drive(app, channel, "warm", WARMUP_MESSAGES, plan.channels, False)
        profiler = cProfile.Profile()
        profiler.enable()
        await _drive(app, channel, "prof", plan.profile_messages, plan.channels, False)
        profiler.disable()
    return top_entries(pstats.Stats(profiler), plan.profile_messages)


async def _drive(
    app: App, channel: BenchChannel, tag: str, messages: int, channels: int, concurrent: bool
) -> list[float]:
    """Send `messages` messages round-robin over `channels`; each one's latency in seconds.

    Sequential: one message at a time. Concurrent: every channel at once, each
    channel sending its next message when its previous reply is complete.
    """
    counts = [len(range(c, messages, channels)) for c in range(min(channels, messages))]
    latencies: list[float] = []

    async def turn(c: int, n: int) -> None:
        msg = channel_message(tag, c, text_for(c, n), n)
        start = time.perf_counter()
        await app.pipeline.handle(msg, channel)
        latencies.append(time.perf_counter() - start)

    async def talk(c: int) -> None:
        for n in range(counts[c]):
            await turn(c, n)

    if concurrent:
        await asyncio.gather(*(talk(c) for c in range(len(counts))))
        return latencies
    for n in range(max(counts, default=0)):
        for c in range(len(counts)):
            if n < counts[c]:
                await turn(c, n)
    return latencies


def instant_engine(settings: Settings) -> FakeEngine:
    """An engine that echoes the message word by word, with no delay at all."""
    return FakeEngine(Registry.load(settings.models_file).lookup(settings.model))


@asynccontextmanager
async def instant_app(settings: Settings, reply_words: int) -> AsyncIterator[App]:
    """The bench app on a started `instant_engine`."""
    engine = instant_engine(settings)
    await engine.start()
    try:
        async with bench_app(settings, engine, reply_words) as app:
            yield app
    finally:
        await engine.close()


def top_entries(stats: pstats.Stats, messages: int, top: int = PROFILE_TOP) -> tuple[ProfileRow, ...]:
    """The `top` functions by cumulative time, without the event loop's own frames."""
    rows = []
    for (path, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        if not _interesting(path, name):
            continue
        where = f"{_short(path)}:{line}({name})"
        rows.append(ProfileRow(where, calls, own * 1000, cumulative * 1000, cumulative / messages * 1e6))
    rows.sort(key=lambda r: r.cumulative_ms, reverse=True)
    return tuple(rows[:top])


def _interesting(path: str, name: str) -> bool:
    """Hearth's code and its libraries, and the main thread's wait for the SQLite thread."""
    if path.startswith(f"{BENCH_DIR}{os.sep}"):
        return False
    return path.startswith(str(REPO_ROOT)) or "site-packages" in path or "epoll" in name


def _short(path: str) -> str:
    for marker in ("site-packages/", f"{REPO_ROOT}/", "lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _row_json(row: ProfileRow) -> dict[str, object]:
    return {
        "function": row.function,
        "calls": row.calls,
        "own_ms": round(row.own_ms, 2),
        "cumulative_ms": round(row.cumulative_ms, 2),
        "per_message_us": round(row.per_message_us, 1),
    }


@contextmanager
def pinned_to_one_core() -> Iterator[int]:
    """Run this thread, and the threads it starts, on one CPU; yields how many cores were allowed."""
    if not hasattr(os, "sched_getaffinity"):
        yield os.cpu_count() or 1
        return
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {max(allowed)})
    try:
        yield 1
    finally:
        os.sched_setaffinity(0, allowed)
