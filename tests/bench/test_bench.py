"""`hearth bench` on the shared real engine, at the smallest sizes that still prove it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.cache import CachePlan, run_cache
from bench.switch import SwitchPlan, run_switch
from bench.throughput import ThroughputPlan, run_throughput
from bot.app.settings import Settings
from engine.vllm_engine import VllmEngine
from tests.conftest import SwitchTarget, make_settings

pytestmark = pytest.mark.engine


@pytest.fixture
def bench_settings(data_dir: Path, tmp_path: Path) -> Settings:
    return make_settings(data_dir, db_path=tmp_path / "unused.sqlite3")


async def test_throughput_measures_all_three_designs(
    bench_settings: Settings, real_engine: VllmEngine
) -> None:
    plan = ThroughputPlan(channels=(1,), reply_tokens=4, repeats=1)

    figures: dict[str, Any] = (await run_throughput(bench_settings, real_engine, plan)).to_json()

    point = figures["points"][0]
    assert [point[d]["tokens"] for d in ("pipeline", "raw", "sequential")] == [4, 4, 4]
    assert point["speedup_vs_sequential"] > 0 and point["pipeline_vs_raw"] > 0


async def test_cache_hit_rate_comes_from_vllm_and_is_bounded(
    bench_settings: Settings, real_engine: VllmEngine
) -> None:
    plan = CachePlan(channels=1, turns=2, reply_tokens=4)

    figures: dict[str, Any] = (await run_cache(bench_settings, real_engine, plan)).to_json()

    stable = figures["layouts"]["stable"]
    assert stable["prompt_mismatches"] == 0, "the re-rendered prompts differ from what the engine got"
    assert 0 < figures["hit_rate"] <= figures["best_possible_hit_rate"]
    assert stable["prefix_cache_queries"] == stable["prompt_tokens"]
    assert figures["clock_hit_rate"] == 0


async def test_switch_answers_messages_sent_while_it_runs(
    bench_settings: Settings, real_engine: VllmEngine, switch_target: SwitchTarget
) -> None:
    target = switch_target.name  # demo-awq where AWQ runs here
    plan = SwitchPlan(target, during=1, reply_tokens=4, restore=True)
    settings = bench_settings.model_copy(update={"models_file": switch_target.models_file})

    figures: dict[str, Any] = (await run_switch(settings, real_engine, plan)).to_json()

    assert figures["serving"] == target and figures["answered_during_switch"] == 1
    # The new model loads beside the old one, which answers meanwhile: no message waits for
    # the switch, and the new model's first reply comes once it is serving.
    assert figures["mode"] == "auto"
    assert figures["longest_wait_s"] < figures["command_s"] <= figures["new_model_first_reply_s"]
    assert real_engine.spec.name == "demo"
