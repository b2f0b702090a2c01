"""The `hearth bench` command group (`bot.app.cli` loads it only when `hearth bench` runs)."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from bench import affinity, cache, flood, overhead, store, switch, throughput
from bench.dashboard import Recorder, render
from bench.harness import PLATFORM_EDIT_INTERVAL_S, bench_settings, started_engine
from bench.moderation import bench_moderation
from bench.report import (
    machine,
    plot_throughput,
    render_tables,
    to_json_lines,
    with_machine,
    write_results,
)
from bench.suite import SuitePlan, run_suite
from bot.app.cli_support import fail, settings_or_exit
from bot.app.collector import tune_collector
from bot.app.settings import Settings
from bot.errors import HearthError
from bot.logs import configure_logging
from engine.base import Engine
from engine.errors import EngineError

RESULTS_FILE = "results.json"
CHART_FILE = "throughput.png"
# What the bench extra adds to Hearth's dependencies (pyproject.toml).
EXTRA_MODULES = ("matplotlib",)
MISSING_EXTRA = "install the bench extra: scripts/setup.sh bench (missing: {modules})"
F = TypeVar("F", bound=Callable[..., Any])
Results = list[dict[str, Any]]


@click.group()
def bench() -> None:
    """Benchmarks: each figure is a ratio of two things measured in the same run."""
    require_extra()


def require_extra() -> None:
    """One line and exit 2, not a traceback halfway through a run, without the bench extra."""
    missing = [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        fail([MISSING_EXTRA.format(modules=", ".join(missing))])


def _int_list(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        numbers = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter("a comma-separated list of numbers, e.g. 1,8,32,64") from None
    if not numbers or min(numbers) < 1:
        raise click.BadParameter("at least one number, each 1 or more")
    return numbers


def common(command: F) -> F:
    """--model and --json, on every benchmark."""
    command = click.option("--json", "as_json", is_flag=True, help="One JSON object per benchmark.")(command)
    return click.option(
        "--model", default=None, help="Registry name, Hugging Face id or directory (default: HEARTH_MODEL)."
    )(command)


def _settings(model: str | None) -> Settings:
    settings = bench_settings(settings_or_exit(), model)
    configure_logging(settings.log_level, settings.secrets())
    return settings


def _counts(text: str) -> tuple[int, ...]:
    """`10,1000` → (10, 1000); a click error for anything but positive whole numbers."""
    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"expected numbers separated by commas, not {text!r}") from None
    if any(count < 1 for count in counts):
        raise click.BadParameter("each count must be at least 1")
    return counts


def _run(work: Coroutine[Any, Any, Results]) -> Results:
    tune_collector()  # as `hearth run` does once started
    try:
        return asyncio.run(work)
    except (HearthError, EngineError) as exc:  # an unknown model, a model that fails to load
        raise click.ClickException(str(exc)) from None


def _emit(results: Sequence[dict[str, Any]], as_json: bool) -> dict[str, object]:
    host = machine()
    if as_json:
        click.echo(to_json_lines([with_machine(r, host) for r in results]))
    else:
        click.echo(render_tables(results, host))
    return host


def _throughput_plan(channels: tuple[int, ...], tokens: int, repeats: int, edit_interval: float,
                     sequential: bool = True) -> throughput.ThroughputPlan:
    return throughput.ThroughputPlan(channels, tokens, repeats, edit_interval, sequential)


async def _on_engine(settings: Settings, work: Callable[[Engine], Awaitable[Results]]) -> Results:
    async with started_engine(settings) as engine:
        return await work(engine)


@bench.command("throughput")
@click.option("--channels", default="1,8,32,64", callback=_int_list, help="Channel counts to measure.")
@click.option("--tokens", default=throughput.DEFAULT_REPLY_TOKENS, type=click.IntRange(1),
              help="Reply length.")
@click.option("--repeats", default=throughput.DEFAULT_REPEATS, type=click.IntRange(1))
@click.option("--edit-interval", default=PLATFORM_EDIT_INTERVAL_S, type=click.FloatRange(0),
              help="Seconds between edits of a streamed reply (platforms allow about one a second).")
@click.option("--sequential/--no-sequential", default=True, help="Also time transformers generate.")
@common
def throughput_command(channels: tuple[int, ...], tokens: int, repeats: int, edit_interval: float,
                       sequential: bool, model: str | None, as_json: bool) -> None:
    """N channels at once: Hearth vs vLLM alone vs transformers one at a time."""
    settings = _settings(model)
    plan = _throughput_plan(channels, tokens, repeats, edit_interval, sequential)

    async def work(engine: Engine) -> Results:
        result = await throughput.run_throughput(settings, engine, plan)
        return [result.to_json(), result.memory_json()]

    _emit(_run(_on_engine(settings, work)), as_json)


@bench.command("overhead")
@click.option("--messages", default=overhead.DEFAULT_MESSAGES, type=click.IntRange(1))
@click.option("--channels", default=overhead.DEFAULT_CHANNELS, type=click.IntRange(1))
@click.option("--edit-interval", default=PLATFORM_EDIT_INTERVAL_S, type=click.FloatRange(0))
@click.option("--burst", "bursts", default=",".join(map(str, overhead.DEFAULT_BURSTS)),
              help="channels sending one message each at once, comma-separated (e.g. 10,1000,10000)")
@common
def overhead_command(messages: int, channels: int, edit_interval: float, bursts: str, model: str | None,
                     as_json: bool) -> None:
    """The bot's own cost per answered message, with an engine that answers instantly."""
    settings = _settings(model)
    plan = overhead.OverheadPlan(messages, channels, edit_interval, min(messages, overhead.PROFILE_MESSAGES),
                                 bursts=_counts(bursts))

    async def work() -> Results:
        return [(await overhead.run_overhead(settings, plan)).to_json()]

    _emit(_run(work()), as_json)


@bench.command("cache")
@click.option("--channels", default=cache.DEFAULT_CHANNELS, type=click.IntRange(1))
@click.option("--turns", default=cache.DEFAULT_TURNS, type=click.IntRange(2))
@click.option("--tokens", default=cache.DEFAULT_REPLY_TOKENS, type=click.IntRange(1), help="Reply length.")
@click.option("--clock/--no-clock", default=True, help="Also run the clock-in-the-persona layout.")
@common
def cache_command(channels: int, turns: int, tokens: int, clock: bool, model: str | None,
                  as_json: bool) -> None:
    """Prefix-cache hit rate over multi-turn conversations, against the best possible."""
    settings = _settings(model)
    plan = cache.CachePlan(channels, turns, tokens, clock)

    async def work(engine: Engine) -> Results:
        return [(await cache.run_cache(settings, engine, plan)).to_json()]

    _emit(_run(_on_engine(settings, work)), as_json)


@bench.command("affinity")
@click.option("--channels", default=affinity.DEFAULT_CHANNELS, type=click.IntRange(1))
@click.option("--turns", default=affinity.DEFAULT_TURNS, type=click.IntRange(2))
@click.option("--tokens", default=affinity.DEFAULT_REPLY_TOKENS, type=click.IntRange(1), help="Reply length.")
@click.option("--urls", default="", help="Two running vLLM servers' base URLs, comma separated "
              "(default: HEARTH_ENGINE_URLS with HEARTH_ENGINE_KIND=remote, else two started here).")
@common
def affinity_command(channels: int, turns: int, tokens: int, urls: str, model: str | None,
                     as_json: bool) -> None:
    """Prefix-cache hit rate on two vLLM replicas: one alone, affinity, round-robin."""
    settings = _settings(model)
    chosen = tuple(u.strip() for u in urls.split(",") if u.strip())
    if not chosen and settings.engine_kind == "remote":
        chosen = settings.engine_urls
    if chosen and len(chosen) < affinity.REPLICAS:
        raise click.BadParameter(f"at least {affinity.REPLICAS} URLs", param_hint="--urls")
    plan = affinity.AffinityPlan(channels, turns, tokens, chosen)

    async def work() -> Results:
        return [(await affinity.run_affinity(settings, plan)).to_json()]

    _emit(_run(work()), as_json)


@bench.command("store")
@click.option("--messages", default=store.DEFAULT_MESSAGES, type=click.IntRange(2))
@click.option("--conversations", default=None, type=click.IntRange(1),
              help="Default: one per 100 messages (10,000 for a million).")
@click.option("--loads", default=store.DEFAULT_LOADS, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per benchmark.")
def store_command(messages: int, conversations: int | None, loads: int, as_json: bool) -> None:
    """SQLite at a million messages: insert rate and context-load latency."""
    plan = store.StorePlan(messages, min(conversations or store.conversations_for(messages), messages), loads)

    async def work() -> Results:
        return [(await store.run_store(plan)).to_json()]

    _emit(_run(work()), as_json)


@bench.command("switch")
@click.option("--to", "target", default=switch.DEFAULT_TARGET, help="The model to switch to.")
@click.option("--during", default=switch.DEFAULT_DURING, type=click.IntRange(0),
              help="Messages sent on other channels while the switch runs.")
@click.option("--tokens", default=switch.DEFAULT_REPLY_TOKENS, type=click.IntRange(1))
@click.option("--mode", type=click.Choice(["auto", "beside", "reload", "both"]), default="both",
              show_default=True,
              help="How the engine switches (HEARTH_SWITCH_MODE); both: beside, then reload.")
@common
def switch_command(
    target: str, during: int, tokens: int, mode: str, model: str | None, as_json: bool
) -> None:
    """Time from an admin's /model command to the new model's first reply, the longest wait,
    and messages answered during the switch, for each switch mode."""
    plan = switch.SwitchPlan(target, during, tokens)
    results: Results = []
    for each in ("beside", "reload") if mode == "both" else (mode,):
        settings = _settings(model).model_copy(update={"switch_mode": each})

        async def work(engine: Engine, settings: Settings = settings) -> Results:
            return [(await switch.run_switch(settings, engine, plan)).to_json()]

        results += _run(_on_engine(settings, work))
    _emit(results, as_json)


@bench.command("memory")
@click.option("--channels", default=64, type=click.IntRange(1), help="Channels in the load between samples.")
@click.option("--tokens", default=throughput.DEFAULT_REPLY_TOKENS, type=click.IntRange(1))
@common
def memory_command(channels: int, tokens: int, model: str | None, as_json: bool) -> None:
    """The bot process's resident memory, idle and after answering CHANNELS at once."""
    settings = _settings(model)
    plan = _throughput_plan((channels,), tokens, 1, PLATFORM_EDIT_INTERVAL_S, sequential=False)

    async def work(engine: Engine) -> Results:
        return [(await throughput.run_throughput(settings, engine, plan)).memory_json()]

    _emit(_run(_on_engine(settings, work)), as_json)


@bench.command("all")
@click.option("--out", default="bench", type=click.Path(file_okay=False, path_type=Path),
              help=f"Where {RESULTS_FILE} and {CHART_FILE} go.")
@click.option("--channels", default="1,8,32,64", callback=_int_list)
@click.option("--messages", default=store.DEFAULT_MESSAGES, type=click.IntRange(2),
              help="Messages in the store benchmark.")
@common
def all_command(
    out: Path, channels: tuple[int, ...], messages: int, model: str | None, as_json: bool
) -> None:
    """Every benchmark; writes OUT/results.json and OUT/throughput.png."""
    settings = _settings(model)
    target = switch.DEFAULT_TARGET if settings.model != switch.DEFAULT_TARGET else "demo"
    plan = SuitePlan(
        throughput=_throughput_plan(channels, throughput.DEFAULT_REPLY_TOKENS, throughput.DEFAULT_REPEATS,
                                    PLATFORM_EDIT_INTERVAL_S),
        cache=cache.CachePlan(),
        switch=switch.SwitchPlan(target),
        overhead=overhead.OverheadPlan(),
        store=store.StorePlan(messages, store.conversations_for(messages)),
    )
    results = _run(run_suite(settings, plan))
    host = _emit(results, as_json)
    write_results(out / RESULTS_FILE, results, host)
    plot_throughput(next(r for r in results if r["benchmark"] == "throughput"), out / CHART_FILE, host)
    click.echo(f"wrote {out / RESULTS_FILE} and {out / CHART_FILE}", err=True)


@bench.command("flood")
@click.option("--talkers", default=flood.DEFAULT_TALKERS, type=click.IntRange(1),
              help="Chats talking normally.")
@click.option("--duration", default=flood.DEFAULT_DURATION_S, type=click.FloatRange(0.1),
              help="Seconds per phase.")
@click.option("--rate", default=flood.DEFAULT_RATE, type=click.FloatRange(0.1),
              help="Flood messages a second.")
@click.option("--think", default=flood.DEFAULT_THINK_S, type=click.FloatRange(0),
              help="Seconds a talker waits between a reply and its next line.")
@click.option("--tokens", default=flood.DEFAULT_REPLY_TOKENS, type=click.IntRange(1), help="Reply length.")
@click.option("--scrape", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Scrape the metrics endpoint every second into this JSON-lines file.")
@click.option("--dashboard", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Draw the Grafana dashboard's panels from the scraped series into this PNG.")
@click.option("--quotas/--no-quotas", default=True,
              help="--no-quotas: rate limits off (the queue bound alone meets the flood).")
@common
def flood_command(talkers: int, duration: float, rate: float, think: float, tokens: int, scrape: Path | None,
                  dashboard: Path | None, quotas: bool, model: str | None, as_json: bool) -> None:
    """One user floods one chat while other chats talk: their latency with and without it."""
    settings = _settings(model)
    plan = flood.FloodPlan(talkers, duration, rate, think, tokens, quotas)
    recorder = Recorder() if scrape or dashboard else None

    async def work(engine: Engine) -> Results:
        return [await flood.run_flood(settings, engine, plan, recorder)]

    results = _run(_on_engine(settings, work))
    _emit(results, as_json)
    if recorder is not None and scrape is not None:
        recorder.write(scrape)
    if recorder is not None and dashboard is not None:
        f = results[0]
        title = (f"Hearth — hearth bench flood: {f['talkers']} chats talking, one user sending "
                 f"{f['flood_rate_per_s']:g} msg/s (model {f['model']}), scraped from /metrics every second")
        render(recorder.samples, dashboard, title)


bench.add_command(bench_moderation, "moderation")
