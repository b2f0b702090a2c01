"""`hearth bench overhead`: the bot's own cost per message, with an engine that answers instantly.

Everything but the model runs for real: SqliteStore, the moderation gate, prompt
building, the streamed reply and the reply channel's send/edit. The process is pinned
to one core while it runs, so messages/s means messages per second of one core.

Only answered messages count (a message a rate limit refused costs far less and
would flatter the figure): the main figures run with the rate limits off, and one
run with the shipped limits says how many of the same messages those answer. Beside
them, in the same run, the physical limits of this machine: a bare sqlite3 insert on
Hearth's schema and a bare asyncio task, so the overhead reads as a fraction of what
the machine can do at all. Bursts: N channels send one message each at the same
moment; the last reply's latency. Per token: what Hearth adds to each streamed token
beyond the engine's own stream (supervision, timing, the view, throttled edits, the
final reply's judgement). The instant engine's reply is over before the first edit is
due, so a second, paced figure streams a token a millisecond with an edit every 50 ms:
the CPU each token costs when the gate judges the growing reply at every edit.
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.harness import PLATFORM_EDIT_INTERVAL_S, BenchChannel, bench_app, channel_message, fixed_length
from bench.limits import Limits, measure_limits
from bench.stats import percentile
from bench.workload import text_for
from bot.app.builder import App
from bot.app.settings import Settings
from engine.fake import FakeEngine
from engine.registry import Registry
from engine.supervisor import Supervisor
from engine.types import ChatMessage

DEFAULT_MESSAGES = 2000
DEFAULT_CHANNELS = 50
DEFAULT_BURSTS = (10, 1000)  # `--burst 10,1000,10000` for the README's figures
PROFILE_MESSAGES = 500
PROFILE_TOP = 15
WARMUP_MESSAGES = 20
TOKEN_REPLY_WORDS = (32, 2032)  # per-token cost: the difference between these reply lengths
TOKEN_REPEATS = 7
PACED_TOKEN_S = 0.001  # the paced engine's pause before each token (~1,000 tokens/s at most)
PACED_EDIT_S = 0.05  # the edit interval of the paced run: an edit, judged by the gate, every ~50 tokens
PACED_REPEATS = 2
BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
NO_LIMITS = {"user_messages_per_minute": 0, "channel_messages_per_minute": 0}


@dataclass(frozen=True, slots=True)
class ProfileRow:
    function: str
    calls: int
    own_ms: float
    cumulative_ms: float
    per_message_us: float


@dataclass(frozen=True, slots=True)
class Burst:
    """`channels` channels sent one message each at the same moment."""

    channels: int
    answered: int
    last_reply_s: float

    def to_json(self) -> dict[str, object]:
        return {"channels": self.channels, "answered": self.answered,
                "last_reply_s": round(self.last_reply_s, 3)}


@dataclass(frozen=True, slots=True)
class OverheadResult:
    messages: int
    channels: int
    edit_interval_s: float
    pinned_cores: int
    answered: int
    messages_per_s: float  # answered, one at a time, limits off
    p50_ms: float
    p99_ms: float
    max_ms: float  # the slowest answered message, one at a time
    cpu_ms_per_message: float  # per answered message
    concurrent_messages_per_s: float  # answered, every channel at once, limits off
    concurrent_p99_ms: float
    shipped_answered: int  # the same concurrent run with the shipped rate limits
    shipped_messages_per_s: float
    sends: int
    edits: int
    limits: Limits
    bursts: tuple[Burst, ...]
    token_overhead_us: float  # what the pipeline adds per token beyond the engine (< 0: noise)
    engine_token_us: float  # the engine's own stream per token (the fake engine)
    paced_token_cpu_us: float  # CPU per token beyond the paced engine's, with edits judged (< 0: noise)
    profile: tuple[ProfileRow, ...]

    def to_json(self) -> dict[str, object]:
        limits = self.limits.to_json()
        per_message_limit = 1000 / self.limits.sqlite_inserts_per_s
        return {
            "benchmark": "overhead",
            "messages": self.messages,
            "channels": self.channels,
            "edit_interval_s": self.edit_interval_s,
            "pinned_cores": self.pinned_cores,
            "answered": self.answered,
            "messages_per_s": round(self.messages_per_s, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "max_ms": round(self.max_ms, 3),
            "cpu_ms_per_message": round(self.cpu_ms_per_message, 3),
            "cpu_in_bare_inserts": round(self.cpu_ms_per_message / per_message_limit, 1),
            "concurrent_messages_per_s": round(self.concurrent_messages_per_s, 1),
            "concurrent_p99_ms": round(self.concurrent_p99_ms, 3),
            "shipped_limits": {"answered": self.shipped_answered, "of": self.messages,
                               "answered_per_s": round(self.shipped_messages_per_s, 1)},
            "sends": self.sends,
            "edits": self.edits,
            "limits": limits,
            "bursts": [b.to_json() for b in self.bursts],
            "token_overhead_us": round(self.token_overhead_us, 2),
            "engine_token_us": round(self.engine_token_us, 2),
            "paced_token_cpu_us": round(self.paced_token_cpu_us, 2),
            "profile": [_row_json(row) for row in self.profile],
        }


@dataclass(frozen=True, slots=True)
class OverheadPlan:
    messages: int = DEFAULT_MESSAGES
    channels: int = DEFAULT_CHANNELS
    edit_interval: float = PLATFORM_EDIT_INTERVAL_S
    profile_messages: int = PROFILE_MESSAGES
    reply_words: int = 32
    bursts: tuple[int, ...] = DEFAULT_BURSTS
    token_reply_words: tuple[int, int] = TOKEN_REPLY_WORDS


async def run_overhead(settings: Settings, plan: OverheadPlan) -> OverheadResult:
    """Limits, sequential latency, concurrent rate (limits off, then shipped), bursts, the
    per-token cost and a profile, each on its own fresh store, all pinned to one core."""
    unlimited = settings.model_copy(update=NO_LIMITS)
    with pinned_to_one_core() as cores, tempfile.TemporaryDirectory(prefix="hearth-limits-") as tmp:
        limits = await measure_limits(Path(tmp))
        sequential = await _measured(unlimited, plan, concurrent=False)
        concurrent = await _measured(unlimited, plan, concurrent=True)
        shipped = await _measured(settings, plan, concurrent=True)
        bursts = tuple([await _burst(unlimited, plan, n) for n in plan.bursts])
        engine_us, token_us = await _per_token(unlimited, plan)
        paced_us = await _paced_per_token(unlimited, plan)
        profile = await _profiled(unlimited, plan)
    answered = len(sequential.latencies)
    return OverheadResult(
        messages=plan.messages,
        channels=plan.channels,
        edit_interval_s=plan.edit_interval,
        pinned_cores=cores,
        answered=answered,
        messages_per_s=answered / sequential.seconds,
        p50_ms=percentile(sequential.latencies, 50) * 1000,
        p99_ms=percentile(sequential.latencies, 99) * 1000,
        max_ms=max(sequential.latencies, default=0.0) * 1000,
        cpu_ms_per_message=sequential.cpu_seconds / max(answered, 1) * 1000,
        concurrent_messages_per_s=len(concurrent.latencies) / concurrent.seconds,
        concurrent_p99_ms=percentile(concurrent.latencies, 99) * 1000,
        shipped_answered=len(shipped.latencies),
        shipped_messages_per_s=len(shipped.latencies) / shipped.seconds,
        sends=sequential.channel.sends,
        edits=sequential.channel.edits,
        limits=limits,
        bursts=bursts,
        token_overhead_us=token_us,
        engine_token_us=engine_us,
        paced_token_cpu_us=paced_us,
        profile=profile,
    )


@dataclass(frozen=True, slots=True)
class _Run:
    latencies: list[float]  # of answered messages only
    seconds: float
    cpu_seconds: float  # every thread of the process: the pipeline and SQLite's threads
    channel: BenchChannel


async def _measured(settings: Settings, plan: OverheadPlan, *, concurrent: bool) -> _Run:
    """`plan.messages` messages on a fresh store, after a few untimed ones."""
    async with instant_app(settings, plan.reply_words) as app:
        await _drive(app, BenchChannel(plan.edit_interval), "warm", WARMUP_MESSAGES, plan.channels, False)
        channel = BenchChannel(plan.edit_interval)
        cpu, start = time.process_time(), time.perf_counter()
        latencies = await _drive(app, channel, "run", plan.messages, plan.channels, concurrent)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
        answered = _answered_ids(app, "run")
        kept = [latency for message_id, latency in latencies.items() if message_id in answered]
        return _Run(kept, seconds, cpu_seconds, channel)


async def _burst(settings: Settings, plan: OverheadPlan, channels: int) -> Burst:
    """`channels` channels, one message each, all at once: when did the last reply end?"""
    async with instant_app(settings, plan.reply_words) as app:
        await _drive(app, BenchChannel(plan.edit_interval), "warm", WARMUP_MESSAGES, plan.channels, False)
        channel = BenchChannel(plan.edit_interval)
        start = time.perf_counter()
        await asyncio.gather(*(app.pipeline.handle(channel_message("burst", c, text_for(c, 0)), channel)
                               for c in range(channels)))
        return Burst(channels, len(_answered_ids(app, "burst")), time.perf_counter() - start)


async def _per_token(settings: Settings, plan: OverheadPlan) -> tuple[float, float]:
    """(µs per token of the engine's own stream, µs Hearth adds per streamed token): one
    message answered with a short and with a long reply, the difference per token, less
    the same difference for the bare engine stream. Each side is the best of
    TOKEN_REPEATS, warmed up first, so the noise of one slow run does not decide it; the
    difference may come out below zero when Hearth's share is within the noise."""
    short, long = plan.token_reply_words
    pipeline = [await _best_reply(settings, words, "tokens", delay=0.0, edit_interval=plan.edit_interval,
                                  warm=3, repeats=TOKEN_REPEATS, clock=time.perf_counter)
                for words in (short, long)]
    bare = [await _best_stream(settings, words, delay=0.0, warm=3, repeats=TOKEN_REPEATS,
                               clock=time.perf_counter)
            for words in (short, long)]
    engine_us = (bare[1] - bare[0]) / (long - short) * 1e6
    pipeline_us = (pipeline[1] - pipeline[0]) / (long - short) * 1e6
    return engine_us, pipeline_us - engine_us


async def _paced_per_token(settings: Settings, plan: OverheadPlan) -> float:
    """CPU µs Hearth spends per token of a reply that streams as an engine's does: a token
    every PACED_TOKEN_S, shown and judged every PACED_EDIT_S; the short and the long reply
    (best of PACED_REPEATS each, after a warm-up), less the same difference for the bare
    paced engine's stream. CPU of every thread (the gate's worker included)."""
    short, long = plan.token_reply_words
    pipeline = [await _best_reply(settings, words, "paced", delay=PACED_TOKEN_S, edit_interval=PACED_EDIT_S,
                                  warm=1, repeats=PACED_REPEATS, clock=time.process_time)
                for words in (short, long)]
    bare = [await _best_stream(settings, words, delay=PACED_TOKEN_S, warm=0, repeats=PACED_REPEATS,
                               clock=time.process_time)
            for words in (short, long)]
    return ((pipeline[1] - pipeline[0]) - (bare[1] - bare[0])) / (long - short) * 1e6


async def _best_reply(settings: Settings, words: int, tag: str, *, delay: float, edit_interval: float,
                      warm: int, repeats: int, clock: Callable[[], float]) -> float:
    """The least `clock` time (seconds) of `repeats` messages answered with `words`-word
    replies (`delay` s before each word), after `warm` untimed ones."""
    async with instant_app(settings, words, delay) as app:
        channel = BenchChannel(edit_interval)
        await _drive(app, channel, "warm", warm, 1, False)
        times = []
        for n in range(repeats):
            start = clock()
            await app.pipeline.handle(channel_message(tag, n, text_for(n, 0)), channel)
            times.append(clock() - start)
        return min(times)


async def _best_stream(settings: Settings, words: int, *, delay: float, warm: int, repeats: int,
                       clock: Callable[[], float]) -> float:
    """The least `clock` time (seconds) of `repeats` bare `instant_engine` streams of
    `words` words, after `warm` untimed ones."""
    engine = instant_engine(settings, words, delay)
    await engine.start()
    try:
        sampling = fixed_length(settings, words)
        times = []
        for _ in range(warm + repeats):
            start = clock()
            async for _chunk in engine.stream([ChatMessage("user", "x")], sampling):
                pass
            times.append(clock() - start)
        return min(times[warm:])
    finally:
        await engine.close()


def _answered_ids(app: App, tag: str) -> set[str]:
    """Platform ids of the user messages of run `tag` that were answered (read from the file)."""
    with closing(sqlite3.connect(f"file:{app.settings.database}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT platform_message_id FROM messages WHERE role = 'user' AND status = 'answered'"
            " AND platform_message_id LIKE ?", (f"{tag}-%",)).fetchall()
    return {str(row[0]) for row in rows}


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
) -> dict[str, float]:
    """Send `messages` messages round-robin over `channels`; each one's latency in seconds,
    by platform message id.

    Sequential: one message at a time. Concurrent: every channel at once, each
    channel sending its next message when its previous reply is complete.
    """
    counts = [len(range(c, messages, channels)) for c in range(min(channels, messages))]
    latencies: dict[str, float] = {}

    async def turn(c: int, n: int) -> None:
        msg = channel_message(tag, c, text_for(c, n), n)
        start = time.perf_counter()
        await app.pipeline.handle(msg, channel)
        latencies[msg.message_id] = time.perf_counter() - start

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


def instant_engine(settings: Settings, reply_words: int, delay: float = 0.0) -> FakeEngine:
    """An engine that answers every prompt with `reply_words` words, one per chunk, with
    no delay at all (or `delay` seconds before each chunk)."""
    words = [" word"] * reply_words

    def script(messages: Sequence[ChatMessage]) -> list[str]:
        return words

    return FakeEngine(Registry.load(settings.models_file).lookup(settings.model), script, delay=delay)


@asynccontextmanager
async def instant_app(settings: Settings, reply_words: int, delay: float = 0.0) -> AsyncIterator[App]:
    """The bench app on a started `instant_engine` answering `reply_words` words,
    supervised as `hearth run` supervises its engine (the watcher is part of the cost)."""
    engine = Supervisor(instant_engine(settings, reply_words, delay))
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
