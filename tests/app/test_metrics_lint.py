"""Hearth's own metrics (`hearth_*`) as Prometheus wants them: every labelled series there
from the start (0, not "No data" on a quiet bot's dashboard), and names, types, help and
units that pass `promtool check metrics`. promtool itself runs where it is installed
(Debian's `prometheus` package has it); `PROMTOOL_RULES` below are the same checks, in
Python, so they run everywhere."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app.metrics_server import MetricsServer
from bot.metrics import QUOTA_LIMITS, REFUSAL_REASONS, Metrics
from engine.types import EngineStats

PLATFORMS = ("discord", "telegram")
NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
# promtool's lint: units in their base form (seconds, bytes…), and the suffixes it knows.
NON_BASE_UNITS = ("milliseconds", "microseconds", "nanoseconds", "minutes", "hours", "days", "weeks",
                  "kilobytes", "megabytes", "gigabytes", "kibibytes", "mebibytes", "gibibytes", "percent",
                  "celsius")
RESERVED_SUFFIXES = ("_count", "_sum", "_bucket")


def exposition() -> str:
    """What the endpoint serves of Hearth's own, on a bot that has done nothing yet."""
    metrics = Metrics()
    metrics.prepare(PLATFORMS)
    metrics.watch(lambda: EngineStats(model="demo"), lambda: 0)
    server = MetricsServer(metrics.registry, "127.0.0.1", 0)
    return server.render_own().decode()


def test_every_labelled_counter_is_there_at_zero_before_any_event() -> None:
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(exposition()) for s in family.samples}

    def value(name: str, **labels: str) -> float | None:
        return samples.get((name, tuple(sorted(labels.items()))))

    for platform in PLATFORMS:
        assert value("hearth_messages_received_total", platform=platform) == 0
        assert value("hearth_messages_answered_total", platform=platform) == 0
        assert value("hearth_reply_duration_seconds_count", platform=platform) == 0
        assert value("hearth_delivery_errors_total", platform=platform, status="0") == 0
        for reason in REFUSAL_REASONS:
            assert value("hearth_messages_refused_total", platform=platform, reason=reason) == 0
        for scope, kind in QUOTA_LIMITS:
            assert value("hearth_quota_refusals_total", platform=platform, scope=scope, kind=kind) == 0
        for outcome in ("merged", "dropped"):
            assert value("hearth_queue_messages_total", platform=platform, outcome=outcome) == 0
        for kind in ("prompt", "cached", "reply"):
            assert value("hearth_tokens_total", platform=platform, kind=kind) == 0
    assert value("hearth_moderation_verdicts_total", direction="input", layer="wordlist", category="none",
                 flagged="false") == 0
    assert value("hearth_moderation_verdicts_total", direction="output", layer="classifier",
                 category="harassment", flagged="true") == 0


def test_hearths_metrics_follow_promtools_rules() -> None:
    problems = [problem for family in text_string_to_metric_families(exposition())
                for problem in lint(family.name, family.type, family.documentation,
                                    {label for s in family.samples for label in s.labels})]
    assert problems == []


def lint(name: str, kind: str, help_text: str, labels: set[str]) -> list[str]:
    """promtool's `check metrics` rules for one family (the parser strips `_total` from a
    counter's family name and `_info` from an info's)."""
    problems = []
    exposed = {"counter": f"{name}_total", "info": f"{name}_info"}.get(kind, name)
    if not exposed.startswith("hearth_") or not NAME.match(exposed):
        problems.append(f"{exposed}: not a snake_case hearth_ name")
    if not help_text.strip():
        problems.append(f"{exposed}: no help text")
    if kind in ("gauge", "info") and exposed.endswith("_total"):
        problems.append(f"{exposed}: a non-counter ends in _total")
    if kind not in ("histogram", "summary") and exposed.endswith(RESERVED_SUFFIXES):
        problems.append(f"{exposed}: _count/_sum/_bucket belong to histograms and summaries")
    problems += [f"{exposed}: unit {unit} is not a base unit" for unit in NON_BASE_UNITS
                 if f"_{unit}" in exposed]
    problems += [f"{exposed}: label {label} is reserved" for label in labels
                 if label.startswith("__") or (label == "le" and kind != "histogram")
                 or (label == "quantile" and kind != "summary")]
    problems += [f"{exposed}: label {label} is not snake_case" for label in labels if not NAME.match(label)]
    return problems


def test_the_lint_finds_what_promtool_would() -> None:
    assert lint("hearth_latency_milliseconds", "gauge", "", {"Platform"}) == [
        "hearth_latency_milliseconds: no help text",
        "hearth_latency_milliseconds: unit milliseconds is not a base unit",
        "hearth_latency_milliseconds: label Platform is not snake_case",
    ]
    assert lint("hearth_replies_total", "gauge", "x", set()) == [
        "hearth_replies_total: a non-counter ends in _total"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (Debian: prometheus)")
def test_promtool_accepts_hearths_metrics() -> None:
    checked = subprocess.run(["promtool", "check", "metrics"], input=exposition(), capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
