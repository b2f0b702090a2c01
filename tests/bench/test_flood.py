"""`hearth bench flood` at the smallest size, on the fake engine (fast), and its dashboard."""

from __future__ import annotations

from pathlib import Path

from bench.dashboard import Recorder, render
from bench.flood import FloodPlan, flood_table, run_flood
from engine.fake import FakeEngine
from engine.registry import Registry
from tests.conftest import make_settings


async def test_a_flood_is_refused_and_reported_and_the_dashboard_drawn(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, user_messages_per_minute=120, user_burst=6)  # 2 a second
    engine = FakeEngine(Registry.load().get("demo"), delay=0.01)
    await engine.start()
    recorder = Recorder()
    plan = FloodPlan(talkers=2, duration_s=1.5, rate=100, think_s=0.6, reply_tokens=4)

    figures = await run_flood(settings, engine, plan, recorder)

    flooder = figures["flooder"]
    assert flooder["sent"] == 150
    assert flooder["accepted"] + flooder["refused"] == 150 and 6 <= flooder["accepted"] <= 10
    assert flooder["notices"] == 1 and flooder["replies"] >= 1 and flooder["others_refused"] == 0
    assert figures["calm"]["replies"] > 0 and figures["flood"]["replies"] > 0
    assert figures["p99_ratio"] > 0 and "flood" in flood_table(figures)
    assert {s["phase"] for s in recorder.samples} == {"calm", "flood", "calm-after"}

    render(recorder.samples, tmp_path / "dashboard.png", "test")
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
