"""`hearth bench moderation`: the gate's quality per language and the latency of one check.

Layers 1-3 only (normalisation, word lists, classifier) with no admin words: the
shipped configuration, measured alone, on the labelled set in `bot/moderation/data`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from bot.app.cli_support import settings_or_exit
from bot.app.gate import gate_config
from bot.app.settings import Settings
from bot.moderation import LayeredGate
from bot.moderation.evaluate import benchmark, load_eval


@click.command("moderation")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A labelled JSONL set (text, lang, label, kind); default: the shipped one.")
@click.option("--iterations", type=click.IntRange(10, 100_000), default=1000, show_default=True,
              help="Checks timed per latency figure.")
@click.option("--show-mistakes", is_flag=True, help="List every misjudged item.")
def bench_moderation(as_json: bool, data: Path | None, iterations: int, show_mistakes: bool) -> None:
    """Moderation quality per language (precision, recall, false-positive rate) on the
    labelled set, and the latency of one check (layers 1–3) at 100 and 4,096 characters."""
    settings = settings_or_exit()
    report = asyncio.run(moderation_report(settings, data, iterations))
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False))
        return
    click.echo(format_report(report, show_mistakes))


async def moderation_report(
    settings: Settings, data: Path | None = None, iterations: int = 1000
) -> dict[str, Any]:
    """Quality per language on the labelled set and the latency of layers 1-3."""
    # Layers 1-3 only, no admin words: the shipped configuration, measured alone.
    async with LayeredGate(gate_config(settings)) as gate:
        report = await benchmark(gate, load_eval(data), iterations)
    report["threshold"] = settings.moderation_threshold
    report["benchmark"] = "moderation"
    return report


def format_report(report: Mapping[str, Any], show_mistakes: bool = False) -> str:
    lines = [
        f"moderation quality (classifier threshold {report['threshold']})",
        f"{'lang':<5} {'split':<8} {'items':>5} {'precision':>9} {'recall':>7} {'FPR':>7}"
        f" {'FN':>4} {'FP':>4}",
    ]
    for lang, row in report["quality"].items():
        for split, figures in [("all", row), *row["by_split"].items()]:
            lines.append(
                f"{lang:<5} {split:<8} {figures['items']:>5} {figures['precision']:>9.3f} "
                f"{figures['recall']:>7.3f} {figures['false_positive_rate']:>7.3f} "
                f"{figures['fn']:>4} {figures['fp']:>4}"
            )
    lines += ["", "latency of one check, layers 1-3"]
    lines.append(f"{'lang':<5} {'chars':>5} {'p50 ms':>8} {'p99 ms':>8}")
    for lang, by_length in report["latency"].items():
        for length, figures in by_length.items():
            lines.append(f"{lang:<5} {length:>5} {figures['p50_ms']:>8.3f} {figures['p99_ms']:>8.3f}")
    if show_mistakes:
        lines += ["", "mistakes:"]
        for lang, row in report["quality"].items():
            lines += [_mistake(lang, m) for m in row["mistakes"]]
    return "\n".join(lines)


def _mistake(lang: str, item: dict[str, str]) -> str:
    return f"  {lang} {item['split']:<7} {item['label']:<6} {item['kind']:<18} {item['text']!r}"
