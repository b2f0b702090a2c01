"""The Grafana dashboard's panels, drawn with matplotlib from series scraped off `/metrics`.

`Recorder` scrapes a running app's Prometheus endpoint over HTTP once a second (as
Prometheus would) and keeps every `hearth_*` sample and vLLM's gauges and counters
(`vllm:*`, histogram buckets left out); `render` draws the panels of
`monitoring/grafana-dashboard.json` from those series, computing what each panel's
PromQL computes (`rate()` over RATE_WINDOW_S, `histogram_quantile`), so the picture
shows numbers from a real run without a Grafana server.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot.app.builder import App

SCRAPE_S = 1.0
RATE_WINDOW_S = 5.0
Series = dict[str, list[tuple[float, float]]]  # "name{a=b,...}" → [(t, value)]


class Recorder:
    """Scrapes `app.metrics_url` every SCRAPE_S seconds into `samples` (one dict per scrape)."""

    def __init__(self) -> None:
        self.samples: list[dict[str, Any]] = []
        self._start: float | None = None  # the first scrape is second 0

    async def __call__(self, app: App, phase: str) -> None:
        url = app.metrics_url
        assert url is not None, "the app serves no metrics (HEARTH_METRICS_PORT)"
        async with aiohttp.ClientSession() as session:
            while True:
                async with session.get(url) as response:
                    text = await response.text()
                self._start = self._start if self._start is not None else time.perf_counter()
                self.samples.append({"t": round(time.perf_counter() - self._start, 3), "phase": phase,
                                     "values": _kept(text)})
                await asyncio.sleep(SCRAPE_S)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(s) + "\n" for s in self.samples), "utf-8")


def _kept(text: str) -> dict[str, float]:
    kept: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            vllm = s.name.startswith("vllm:") and not s.name.endswith("_bucket")
            if s.name.startswith("hearth_") or vllm or s.name == "process_resident_memory_bytes":
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()) if k != "engine")
                kept[f"{s.name}{{{labels}}}"] = s.value
    return kept


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def series(samples: list[dict[str, Any]]) -> Series:
    out: Series = defaultdict(list)
    for sample in samples:
        for key, value in sample["values"].items():
            out[key].append((sample["t"], value))
    return out


def matching(all_series: Series, name: str, **labels: str) -> dict[str, list[tuple[float, float]]]:
    """The series of metric `name` whose labels include `labels`."""
    found = {}
    for key, points in all_series.items():
        metric, _, rest = key.partition("{")
        have = dict(part.split("=", 1) for part in rest.rstrip("}").split(",") if part)
        if metric == name and all(have.get(k) == v for k, v in labels.items()):
            found[key] = points
    return found


def rate(points: list[tuple[float, float]], window: float = RATE_WINDOW_S) -> list[tuple[float, float]]:
    """Per-second increase over the last `window` seconds, like PromQL's rate()."""
    out = []
    for i, (t, v) in enumerate(points):
        earlier = [(t0, v0) for t0, v0 in points[:i] if t - t0 <= window + 1e-6]
        if earlier and t > earlier[0][0] and v >= earlier[0][1]:
            out.append((t, (v - earlier[0][1]) / (t - earlier[0][0])))
    return out


def quantile(
    all_series: Series, name: str, q: float, window: float = RATE_WINDOW_S
) -> list[tuple[float, float]]:
    """histogram_quantile(q, sum by (le) (rate(name_bucket[window]))), over every label but `le`."""
    buckets: dict[float, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for key, points in matching(all_series, f"{name}_bucket").items():
        le = float(key.split("le=", 1)[1].split(",", 1)[0].rstrip("}"))
        for t, r in rate(points, window):
            buckets[t][le] += r
    out = []
    for t in sorted(buckets):
        bounds = sorted(buckets[t].items())
        total = bounds[-1][1] if bounds else 0.0
        if total <= 0:
            continue
        target, previous = q * total, (0.0, 0.0)
        for le, count in bounds:
            if count >= target:
                lo, below = previous
                top = lo * 2 if math.isinf(le) else le
                share = (target - below) / (count - below) if count > below else 1.0
                out.append((t, lo + (top - lo) * share))
                break
            previous = (le, count)
    return out


def render(samples: list[dict[str, Any]], path: Path, title: str) -> None:
    """Draw the dashboard's panels into `path` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = series(samples)
    panels: list[tuple[str, str, Callable[[Any], None]]] = [
        ("Messages / s by outcome", "msg/s", lambda ax: _outcomes(ax, data)),
        ("Refused / s by reason", "msg/s", lambda ax: _by_label(ax, data, "hearth_messages_refused_total",
                                                                  "reason", rate_of=True)),
        ("Reply duration (s)", "s", lambda ax: _quantiles(ax, data, "hearth_reply_duration_seconds")),
        ("Time to first token (s)", "s",
         lambda ax: _quantiles(ax, data, "hearth_time_to_first_token_seconds")),
        ("Queue depth, engine generating", "", lambda ax: _gauges(ax, data)),
        ("Tokens / s", "tok/s", lambda ax: _by_label(ax, data, "hearth_tokens_total", "kind", rate_of=True)),
        ("Waiting messages merged / dropped (total)", "messages",
         lambda ax: _by_label(ax, data, "hearth_queue_messages_total", "outcome", rate_of=False)),
        ("Quota refusals / s by scope and kind", "msg/s", lambda ax: _quota(ax, data)),
        ("Moderation verdicts / s", "checks/s",
         lambda ax: _by_label(ax, data, "hearth_moderation_verdicts_total", "direction", rate_of=True)),
        ("Prefix-cache hit rate, engine restarts", "", lambda ax: _engine(ax, data)),
        ("Delivery errors / s by status", "errors/s",
         lambda ax: _by_label(ax, data, "hearth_delivery_errors_total", "status", rate_of=True)),
        ("Process memory, resident (MiB)", "MiB", lambda ax: _plot(
            ax, [(t, v / (1 << 20)) for t, v in _summed(matching(data, "process_resident_memory_bytes"))],
            "Hearth process")),
    ]
    fig, axes = plt.subplots(3, 4, figsize=(22, 11), facecolor="#111217")
    phases = _phase_starts(samples)
    for ax, (name, unit, draw) in zip(axes.flat, panels, strict=True):
        _style(ax, name, unit)
        draw(ax)
        ax.set_ylim(bottom=0)
        for t, phase in phases:
            ax.axvline(t, color="#888", linestyle=":", linewidth=1)
            ax.text(t, 1.0, f" {phase}", transform=ax.get_xaxis_transform(), color="#aaa", fontsize=8,
                    va="top")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, facecolor="#1f2026", edgecolor="#333", labelcolor="#ddd")
    fig.suptitle(title, color="#eee", fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, facecolor=fig.get_facecolor())
    plt.close(fig)


def _style(ax: Any, name: str, unit: str) -> None:
    ax.set_facecolor("#181b1f")
    ax.set_title(name, color="#ddd", fontsize=10, loc="left")
    ax.tick_params(colors="#aaa", labelsize=8)
    for spine in ax.spines.values():
        spine.set_color("#333")
    ax.grid(color="#2a2d33", linewidth=0.6)
    ax.set_xlabel("seconds into the run", color="#888", fontsize=8)
    if unit:
        ax.set_ylabel(unit, color="#888", fontsize=8)


def _plot(ax: Any, points: Iterable[tuple[float, float]], label: str) -> None:
    points = list(points)
    if points:
        ax.plot([t for t, _ in points], [v for _, v in points], label=label, linewidth=1.4)


def _outcomes(ax: Any, data: Series) -> None:
    for metric, label in (("hearth_messages_received_total", "received"),
                          ("hearth_messages_answered_total", "answered"),
                          ("hearth_messages_refused_total", "refused")):
        _plot(ax, _summed_rate(matching(data, metric)), label)


def _by_label(ax: Any, data: Series, metric: str, label: str, *, rate_of: bool) -> None:
    groups: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(dict)
    for key, points in matching(data, metric).items():
        value = key.split(f"{label}=", 1)[1].split(",", 1)[0].rstrip("}") if f"{label}=" in key else "-"
        groups[value][key] = points
    for value, members in sorted(groups.items()):
        _plot(ax, _summed_rate(members) if rate_of else _summed(members), value)


def _quantiles(ax: Any, data: Series, metric: str) -> None:
    for q in (0.5, 0.99):
        _plot(ax, quantile(data, metric, q), f"p{round(q * 100)}")


def _gauges(ax: Any, data: Series) -> None:
    _plot(ax, _summed(matching(data, "hearth_queue_depth")), "queue depth")
    _plot(ax, _summed(matching(data, "hearth_engine_generating")), "generating")
    _plot(ax, _summed(matching(data, "vllm:num_requests_running")), "vLLM running")


def _quota(ax: Any, data: Series) -> None:
    for key, points in sorted(matching(data, "hearth_quota_refusals_total").items()):
        labels = dict(part.split("=", 1) for part in key.partition("{")[2].rstrip("}").split(",") if part)
        _plot(ax, rate(points), f"{labels.get('scope')} {labels.get('kind')}")


def _engine(ax: Any, data: Series) -> None:
    _plot(ax, _summed(matching(data, "hearth_prefix_cache_hit_rate")), "hit rate (Hearth)")
    _plot(ax, _summed(matching(data, "hearth_engine_restarts_total")), "restarts")
    ax.set_ylim(bottom=0)


def _summed(members: dict[str, list[tuple[float, float]]]) -> list[tuple[float, float]]:
    totals: dict[float, float] = defaultdict(float)
    for points in members.values():
        for t, v in points:
            totals[t] += v
    return sorted(totals.items())


def _summed_rate(members: dict[str, list[tuple[float, float]]]) -> list[tuple[float, float]]:
    return _summed({key: rate(points) for key, points in members.items()})


def _phase_starts(samples: list[dict[str, Any]]) -> list[tuple[float, str]]:
    starts, last = [], None
    for sample in samples:
        if sample["phase"] != last:
            starts.append((sample["t"], sample["phase"]))
            last = sample["phase"]
    return starts
