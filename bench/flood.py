"""`hearth bench flood`: one user floods one chat while other chats talk normally.

One app (the settings' quotas and bounds, a fresh database) on the real engine, in
three phases of `duration_s` each, every phase with conversations of its own: `calm`,
where `talkers` chats talk like people (send a line, wait for the reply, think
`think_s`, again); `flood`, the same while one user also sends `rate` messages a
second into one chat without waiting for anything, each handed to the pipeline the
way an adapter does (intake awaited, one after the other); `calm-after`, like the
first. Figures: the talkers' reply latency (message handed over → reply complete)
p50/p99 without the flood (both calm phases) and with it, and the p99 ratio (target
≤ 1.5); what became of the flood (accepted, refused by a quota, merged into one
reply, dropped past the bound, replies it got, the intake rate actually reached);
the process's resident memory; the deepest queue seen. `--no-quotas` runs it with
the rate limits off, so the bounded queue alone meets the flood.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.harness import BenchChannel, bench_app, channel_message
from bench.workload import text_for
from bot.app.builder import App
from bot.app.settings import Settings
from bot.messages import ConversationKey, IncomingMessage
from engine.base import Engine

DEFAULT_TALKERS = 16
DEFAULT_DURATION_S = 10.0
DEFAULT_RATE = 200.0
DEFAULT_THINK_S = 3.0  # a person reads the reply and types the next line: ≤ 20 a minute each
DEFAULT_REPLY_TOKENS = 32
TARGET_P99_RATIO = 1.5
SAMPLE_S = 0.1
MIB = 1 << 20
FLOODER = "flooder"

Scraper = Callable[[App, str], Coroutine[Any, Any, None]]  # (app, phase) → runs until cancelled


@dataclass(frozen=True, slots=True)
class FloodPlan:
    talkers: int = DEFAULT_TALKERS
    duration_s: float = DEFAULT_DURATION_S
    rate: float = DEFAULT_RATE
    think_s: float = DEFAULT_THINK_S
    reply_tokens: int = DEFAULT_REPLY_TOKENS
    quotas: bool = True  # False: the settings' rate limits off for the run


@dataclass(slots=True)
class Phase:
    """What one phase measured."""

    latencies: list[float] = field(default_factory=list)
    flood_sent: int = 0
    flood_handed_on: int = 0
    flood_channel: BenchChannel = field(default_factory=BenchChannel)
    intake_s: float = 0.0
    rss_mib: list[float] = field(default_factory=list)
    depth: list[int] = field(default_factory=list)
    in_flight: list[int] = field(default_factory=list)

    def latency_json(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        median = statistics.median(ordered) if ordered else None
        return {"replies": len(ordered), "p50_s": _round(median), "p99_s": _round(_percentile(ordered, 0.99)),
                "max_s": _round(ordered[-1] if ordered else None)}


async def run_flood(settings: Settings, engine: Engine, plan: FloodPlan, scrape: Scraper | None = None
                    ) -> dict[str, Any]:
    """Both phases on one app; the figures as one JSON object. `scrape`, when given, runs
    beside each phase (the app then serves its metrics endpoint)."""
    if scrape is not None:
        settings = settings.model_copy(update={"metrics_port": 0})
    if not plan.quotas:
        off = {"user_messages_per_minute": 0, "channel_messages_per_minute": 0}
        settings = settings.model_copy(update=off)
    async with bench_app(settings, engine, plan.reply_tokens) as app:
        await _talk(app, BenchChannel(), "warm", plan.talkers, 0.0, 0.0)  # one line each: warms the engine
        before = await _phase(app, plan, "calm", flood=False, scrape=scrape)
        flood = await _phase(app, plan, "flood", flood=True, scrape=scrape)
        after = await _phase(app, plan, "calm-after", flood=False, scrape=scrape)
        figures = _figures(settings, engine, plan, before, flood, after)
        return {**figures, "flooder": await _flooder(app, flood)}


async def _phase(app: App, plan: FloodPlan, tag: str, *, flood: bool, scrape: Scraper | None) -> Phase:
    phase, channel = Phase(), BenchChannel()
    helpers = [asyncio.create_task(_sample(app, phase))]
    if scrape is not None:
        helpers.append(asyncio.create_task(scrape(app, tag)))
    try:
        talk = _talk(app, channel, tag, plan.talkers, plan.duration_s, plan.think_s, phase.latencies)
        await asyncio.gather(talk, _flood(app, tag, plan, phase) if flood else asyncio.sleep(0))
        await _settled(app)
    finally:
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
    return phase


async def _talk(app: App, channel: BenchChannel, tag: str, talkers: int, duration_s: float, think_s: float,
                latencies: list[float] | None = None) -> None:
    """Each talker: a line, its reply, `think_s`, again, until `duration_s` has passed."""
    end = time.perf_counter() + duration_s

    async def talker(n: int) -> None:
        turn = 0
        while turn == 0 or time.perf_counter() < end:
            msg = channel_message(tag, n, text_for(n, turn), turn)
            started = time.perf_counter()
            await app.pipeline.handle(msg, channel)
            if latencies is not None:
                latencies.append(time.perf_counter() - started)
            turn += 1
            await asyncio.sleep(think_s)

    await asyncio.gather(*(talker(n) for n in range(talkers)))


async def _flood(app: App, tag: str, plan: FloodPlan, phase: Phase) -> None:
    """`rate` messages a second from one user into one chat, each handed over after the last."""
    key = ConversationKey("bench", f"{tag}-flooded")
    count = int(plan.rate * plan.duration_s)
    start = time.perf_counter()
    for n in range(count):
        delay = start + n / plan.rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        msg = IncomingMessage(key, FLOODER, "Flooder", f"flood {n}: {text_for(n)}", f"{tag}-flood-{n}",
                              is_direct=True, channel_name="flooded")
        phase.flood_handed_on += await app.pipeline.submit(msg, phase.flood_channel) is not None
        phase.flood_sent += 1
    phase.intake_s = time.perf_counter() - start


async def _settled(app: App, within_s: float = 600.0) -> None:
    """Until every reply of the phase is done (the flood chat's last one included)."""
    for _ in range(int(within_s / SAMPLE_S)):
        if not app.pipeline.in_flight():
            return
        await asyncio.sleep(SAMPLE_S)


async def _sample(app: App, phase: Phase) -> None:
    import psutil

    process = psutil.Process()
    while True:
        phase.rss_mib.append(process.memory_info().rss / MIB)
        phase.depth.append(app.queue.depth())
        phase.in_flight.append(app.pipeline.in_flight())
        await asyncio.sleep(SAMPLE_S)


def _figures(
    settings: Settings, engine: Engine, plan: FloodPlan, before: Phase, flood: Phase, after: Phase
) -> dict[str, Any]:
    """`calm` pools the phases before and after the flood, so a drift of the machine or
    the engine over the run (warming up, say) does not pass for the flood's effect."""
    calm = Phase(latencies=before.latencies + after.latencies, rss_mib=before.rss_mib + after.rss_mib,
                 depth=before.depth + after.depth, in_flight=before.in_flight + after.in_flight)
    calm_p99 = _percentile(sorted(calm.latencies), 0.99)
    flood_p99 = _percentile(sorted(flood.latencies), 0.99)
    ratio = flood_p99 / calm_p99 if calm_p99 and flood_p99 else None
    return {
        "benchmark": "flood",
        "model": engine.spec.name,
        "talkers": plan.talkers, "duration_s": plan.duration_s, "flood_rate_per_s": plan.rate,
        "think_s": plan.think_s, "reply_tokens": plan.reply_tokens,
        "quotas": {"user_per_minute": settings.user_messages_per_minute, "user_burst": settings.user_burst,
                   "merge_limit": settings.queue_merge_limit,
                   "channel_concurrency": settings.channel_concurrency},
        "calm": calm.latency_json(),
        "flood": flood.latency_json(),
        "calm_before": before.latency_json(), "calm_after": after.latency_json(),
        "p99_ratio": _round(ratio), "target_p99_ratio": TARGET_P99_RATIO,
        "met": ratio is not None and ratio <= TARGET_P99_RATIO,
        "memory_mib": {phase: _memory(p) for phase, p in (("calm", calm), ("flood", flood))},
        "max_queue_depth": {"calm": max(calm.depth, default=0), "flood": max(flood.depth, default=0)},
        "max_tasks": {"calm": max(calm.in_flight, default=0), "flood": max(flood.in_flight, default=0)},
    }


async def _flooder(app: App, flood: Phase) -> dict[str, Any]:
    """What became of the flood: the usage log's counts, the queue's metrics, the replies."""
    def sample(name: str, **labels: str) -> int:
        return int(app.metrics.registry.get_sample_value(name, {"platform": "bench", **labels}) or 0)

    await app.quotas.ledger.flush()
    usage = await app.store.usage("0000-00-00")
    mine = [u for u in usage if u.author_id == FLOODER]
    accepted, refused = sum(u.messages for u in mine), sum(u.refused for u in mine)
    return {
        "sent": flood.flood_sent,
        "intake_rate_per_s": _round(flood.flood_sent / flood.intake_s if flood.intake_s else None),
        "accepted": accepted,
        "refused": refused,
        "notices": flood.flood_handed_on - accepted,
        "merged": sample("hearth_queue_messages_total", outcome="merged"),
        "dropped": sample("hearth_queue_messages_total", outcome="dropped"),
        "replies": flood.flood_channel.sends - (flood.flood_handed_on - accepted),  # the rest are notices
        "others_refused": sum(u.refused for u in usage if u.author_id != FLOODER),
    }


def _memory(phase: Phase) -> dict[str, float | None]:
    rss = phase.rss_mib
    return {"start": _round(rss[0] if rss else None), "peak": _round(max(rss, default=0.0) or None),
            "end": _round(rss[-1] if rss else None)}


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def flood_table(r: Mapping[str, Any]) -> str:
    """The readable table for `hearth bench flood`."""
    from bench.report import table

    f = r["flooder"]
    head = table(
        f"flood — model {r['model']}, {r['talkers']} chats talking, one user sending "
        f"{r['flood_rate_per_s']:g} messages/s for {r['duration_s']:g} s, {r['reply_tokens']}-token replies",
        ["phase", "replies", "p50_s", "p99_s", "max_s", "peak_rss_mib", "max_queue_depth"],
        [[p, r[p]["replies"], r[p]["p50_s"], r[p]["p99_s"], r[p]["max_s"], r["memory_mib"][p]["peak"],
          r["max_queue_depth"][p]] for p in ("calm", "flood")],
    )
    flood = table(
        f"the flood: p99 ratio {r['p99_ratio']} (target ≤ {r['target_p99_ratio']}: "
        f"{'met' if r['met'] else 'missed'})",
        ["sent", "intake_rate_per_s", "accepted", "refused", "notices", "merged", "dropped", "replies"],
        [[f["sent"], f["intake_rate_per_s"], f["accepted"], f["refused"], f["notices"], f["merged"],
          f["dropped"], f["replies"]]],
    )
    return f"{head}\n\n{flood}"

