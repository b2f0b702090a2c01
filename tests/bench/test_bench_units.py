"""`hearth bench` on tiny sizes, without the real engine: the figures exist and add up."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bench import report
from bench.cache import cacheable_tokens, clock_persona
from bench.harness import BenchChannel, bench_app, channel_message, fixed_length
from bench.limits import sqlite_insert_rate
from bench.overhead import OverheadPlan, run_overhead
from bench.stats import percentile
from bench.store import StorePlan, run_store
from bench.switch import SwitchPlan, run_switch
from bench.throughput import ThroughputPlan, run_throughput
from bot.app.cli import main
from bot.app.settings import Settings
from engine.fake import FakeEngine
from engine.registry import Registry

TINY_OVERHEAD = OverheadPlan(
    messages=12, channels=3, profile_messages=6, bursts=(5,), token_reply_words=(4, 204),
)
TINY_STORE = StorePlan(messages=200, conversations=10, loads=20, api_sample=10)
HOST = {"cores": 2, "device": "cpu"}


def fake_engine() -> FakeEngine:
    """Answers instantly; FakeEngine needs no start before it streams."""
    return FakeEngine(Registry.load().get("demo"))


def throughput_figures() -> dict[str, Any]:
    rate = {"tokens": 64, "replies": 1, "seconds": 0.5, "tokens_per_s": 128.0, "replies_per_s": 2.0}
    point = {"channels": 1, "pipeline": rate, "raw": rate, "sequential": rate,
             "speedup_vs_sequential": 1.0, "pipeline_vs_raw": 1.0}
    return {"benchmark": "throughput", "model": "demo", "reply_tokens": 64, "edit_interval_s": 1.0,
            "repeats": 1, "points": [point, {**point, "channels": 8}]}


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]

    assert (percentile(values, 50), percentile(values, 99), percentile([], 99)) == (50.0, 99.0, 0.0)


def test_only_whole_shared_blocks_are_cacheable() -> None:
    seen = list(range(300))
    prompt = [*range(290), 9999, *range(291, 400)]

    assert cacheable_tokens(seen, prompt, 128) == 256


def test_the_last_prompt_token_is_never_cacheable() -> None:
    assert cacheable_tokens(list(range(256)), list(range(256)), 128) == 128


def test_the_clock_persona_shows_seconds_where_the_date_was() -> None:
    persona = clock_persona("Today is {date}.", dt.datetime(2026, 1, 2, 3, 4, 5))

    assert persona == "Today is {date} 03:04:05."


def test_fixed_length_replies_ignore_eos_and_keep_the_settings_sampling(settings: Settings) -> None:
    sampling = fixed_length(settings, 7)

    assert (sampling.max_tokens, sampling.ignore_eos, sampling.temperature) == (7, True, settings.temperature)


async def test_bench_app_replies_have_the_fixed_length(settings: Settings) -> None:
    engine = fake_engine()
    msg = channel_message("t", 0, "one two three four five")
    async with bench_app(settings, engine, reply_tokens=3) as app:
        await app.pipeline.handle(msg, BenchChannel(edit_interval=0.0))
        history = await app.store.history(msg.key)

    assert [m.reply_tokens for m in history if m.role == "assistant"] == [3]


async def test_bench_app_never_writes_to_the_users_database(settings: Settings) -> None:
    async with bench_app(settings, fake_engine(), reply_tokens=4) as app:
        await app.pipeline.handle(channel_message("t", 0, "hello"), BenchChannel(edit_interval=0.0))

    assert not settings.database.exists()


async def test_bench_channel_records_sends_and_edits(settings: Settings) -> None:
    channel = BenchChannel(edit_interval=0.0)
    msg = channel_message("t", 0, "one two three")
    async with bench_app(settings, fake_engine(), reply_tokens=8) as app:
        await app.pipeline.handle(msg, channel)

    assert channel.texts(msg.key) == ["echo: ⟦user0⟧: one two three"]  # a group speaker, labelled
    assert channel.sends == 1 and channel.edits >= 1 and msg.key in channel.first_sent


async def test_overhead_reports_rate_latency_and_profile(settings: Settings) -> None:
    figures: dict[str, Any] = (await run_overhead(settings, TINY_OVERHEAD)).to_json()

    assert figures["answered"] == TINY_OVERHEAD.messages, "limits off: every message answered"
    assert figures["messages_per_s"] > 0 and 0 < figures["p50_ms"] <= figures["p99_ms"]
    assert figures["sends"] == TINY_OVERHEAD.messages
    assert figures["limits"]["sqlite_inserts_per_s"] > 0 and figures["limits"]["tasks_per_s"] > 0
    assert figures["limits"]["sqlite_checkpointed_inserts_per_s"] > 0
    assert figures["limits"]["sqlite_statements_inserts_per_s"] > 0
    assert figures["max_ms"] >= figures["p99_ms"] >= figures["p50_ms"] > 0
    [burst] = figures["bursts"]
    assert (burst["channels"], burst["answered"]) == (5, 5) and burst["last_reply_s"] > 0
    assert figures["engine_token_us"] > 0 and figures["token_overhead_us"] > -figures["engine_token_us"]
    assert figures["paced_token_cpu_us"] > 0, "edits judged by the gate cost something per token"
    assert any("bot/pipeline/" in row["function"] for row in figures["profile"])
    assert not any(row["function"].startswith("bench/") for row in figures["profile"])


async def test_store_bench_builds_the_set_and_loads_contexts(tmp_path: Path) -> None:
    figures: dict[str, Any] = (await run_store(TINY_STORE, tmp_path)).to_json()

    assert figures["messages"] == 200 and figures["context_messages_mean"] == 20
    assert figures["insert_rate"] > 0 and figures["bulk_insert_rate"] > 0
    assert 0 < figures["p50_ms"] <= figures["p99_ms"] and figures["loads"] == 20


async def test_throughput_compares_pipeline_and_raw_on_the_same_work(settings: Settings) -> None:
    plan = ThroughputPlan(channels=(1, 3), reply_tokens=4, repeats=1, sequential=False)

    result = await run_throughput(settings, fake_engine(), plan)

    figures: dict[str, Any] = result.to_json()
    memory: dict[str, Any] = result.memory_json()
    points = figures["points"]
    assert [p["channels"] for p in points] == [1, 3]
    assert [p["pipeline"]["replies"] for p in points] == [p["raw"]["replies"] for p in points] == [1, 3]
    assert all(p["pipeline_vs_raw"] > 0 and p["speedup_vs_sequential"] is None for p in points)
    assert memory["bot_rss_after_throughput_mb"] > 0


async def test_switch_counts_messages_answered_during_it(settings: Settings) -> None:
    engine = fake_engine()

    figures = (await run_switch(settings, engine, SwitchPlan("demo-awq", during=3))).to_json()

    assert (figures["sent_during_switch"], figures["answered_during_switch"]) == (3, 3)
    assert figures["serving"] == engine.spec.name == "demo-awq"
    assert figures["time_to_first_reply_s"] is not None


async def test_switch_can_restore_the_previous_model(settings: Settings) -> None:
    engine = fake_engine()

    await run_switch(settings, engine, SwitchPlan("demo-awq", during=1, restore=True))

    assert engine.spec.name == "demo"


def test_json_lines_carry_the_machine() -> None:
    lines = report.to_json_lines([report.with_machine(throughput_figures(), HOST)]).splitlines()

    assert json.loads(lines[0])["machine"] == HOST


def test_machine_names_cores_cpu_python_and_device() -> None:
    host = report.machine()

    assert {"cores", "ram_gb", "cpu_model", "python", "vllm", "device"} <= host.keys()


def test_results_file_groups_figures_by_benchmark(tmp_path: Path) -> None:
    report.write_results(tmp_path / "results.json", [throughput_figures()], HOST)

    document = json.loads((tmp_path / "results.json").read_text())
    assert document["machine"] == HOST
    assert document["benchmarks"]["throughput"]["points"][0]["speedup_vs_sequential"] == 1.0


def test_the_throughput_chart_is_a_png(tmp_path: Path) -> None:
    report.plot_throughput(throughput_figures(), tmp_path / "throughput.png", HOST)

    assert (tmp_path / "throughput.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_overhead_counts_only_answered_messages_under_the_shipped_limits(settings: Settings) -> None:
    limited = settings.model_copy(update={"user_messages_per_minute": 20, "user_burst": 1,
                                          "channel_messages_per_minute": 0})
    figures: dict[str, Any] = (await run_overhead(limited, TINY_OVERHEAD)).to_json()

    assert figures["answered"] == TINY_OVERHEAD.messages
    assert figures["shipped_limits"]["answered"] < TINY_OVERHEAD.messages, "one per user at once: refused"


@pytest.mark.parametrize("name", ["throughput", "overhead", "cache", "store", "switch", "memory"])
def test_every_benchmark_has_a_table(name: str) -> None:
    assert name in report.TABLES


def test_the_throughput_table_shows_both_ratios() -> None:
    text = report.render_tables([throughput_figures()], HOST)

    assert "speedup_vs_sequential" in text and "pipeline_vs_raw" in text and "cores 2" in text


def test_hearth_bench_store_prints_json() -> None:
    args = ["bench", "store", "--messages", "40", "--conversations", "4", "--loads", "5", "--json"]

    result = CliRunner().invoke(main, args)

    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.splitlines()[0])
    assert figures["benchmark"] == "store" and "p99_ms" in figures and "cores" in figures["machine"]


@pytest.mark.parametrize("module", ["matplotlib"])
def test_hearth_bench_without_the_extra_says_how_to_install_it(
    module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what `import` sees when it is not installed

    result = CliRunner().invoke(main, ["bench", "store", "--messages", "40"])

    assert result.exit_code == 2
    expected = f"hearth: install the bench extra: scripts/setup.sh bench (missing: {module})"
    assert result.output.strip() == expected


def test_the_stores_statements_limit_stores_every_message(tmp_path: Path) -> None:
    """`statements=True` runs what the store runs for one message (BEGIN IMMEDIATE, PRAGMA
    data_version, the insert, COMMIT), each message in a transaction of its own."""
    path = tmp_path / "statements.sqlite3"
    assert sqlite_insert_rate(path, 50, statements=True) > 0
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 50
