"""Run benchmarks that need the real engine on one engine, started once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.cache import CachePlan, run_cache
from bench.harness import started_engine
from bench.moderation import moderation_report
from bench.overhead import OverheadPlan, run_overhead
from bench.store import StorePlan, run_store
from bench.switch import SwitchPlan, run_switch
from bench.throughput import ThroughputPlan, run_throughput
from bot.app.settings import Settings


@dataclass(frozen=True, slots=True)
class SuitePlan:
    throughput: ThroughputPlan
    cache: CachePlan
    switch: SwitchPlan
    overhead: OverheadPlan
    store: StorePlan


async def run_suite(settings: Settings, plan: SuitePlan) -> list[dict[str, Any]]:
    """Everything: the engine benchmarks first (switch last: it changes the model), then
    the ones without a model, once the engine is gone and the CPU is quiet."""
    results: list[dict[str, Any]] = []
    async with started_engine(settings) as engine:
        throughput = await run_throughput(settings, engine, plan.throughput)
        results += [throughput.to_json(), throughput.memory_json()]
        results.append((await run_cache(settings, engine, plan.cache)).to_json())
        results.append((await run_switch(settings, engine, plan.switch)).to_json())
    results.append((await run_overhead(settings, plan.overhead)).to_json())
    results.append((await run_store(plan.store)).to_json())
    results.append(await moderation_report(settings))
    return results

