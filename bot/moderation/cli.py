"""`hearth moderate` (try the gate on text) and the `moderation` benchmark command."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

import click

from bot.cli_support import settings_or_exit
from bot.messages import ConversationKey, Verdict
from bot.moderation.base import Direction
from bot.moderation.evaluate import benchmark, load_eval
from bot.moderation.factory import build_gate
from bot.moderation.gate import GateConfig, LayeredGate
from bot.settings import Settings
from bot.store import SqliteStore

DEFAULT_SCOPE = ConversationKey("cli", "moderate")


def _channel_key(channel: str | None) -> ConversationKey:
    if channel is None:
        return DEFAULT_SCOPE
    platform, _, name = channel.partition(":")
    if not platform or not name:
        raise click.BadParameter("expected platform:channel, e.g. discord:1234", param_hint="--channel")
    return ConversationKey(platform, name)


def parse_line(line: str) -> tuple[str, dict[str, Any]]:
    """The text to check, and the input object (a plain line becomes {"text": line})."""
    stripped = line.rstrip("\r\n")
    if stripped.lstrip().startswith("{"):
        try:
            row = json.loads(stripped)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict) and isinstance(row.get("text"), str):
            return row["text"], row
    return stripped, {"text": stripped}


def result_json(verdict: Verdict, row: dict[str, Any]) -> str:
    out: dict[str, Any] = {"id": row["id"]} if "id" in row else {}
    out |= {
        "flagged": verdict.flagged,
        "categories": verdict.categories,
        "category_scores": verdict.category_scores,
        "layer": verdict.layer,
        "action": verdict.action,
    }
    return json.dumps(out, ensure_ascii=False)


@asynccontextmanager
async def running_gate(settings: Settings) -> AsyncIterator[LayeredGate]:
    """The bot's gate: its settings and the admin words stored in its database (if any)."""
    if settings.database.exists():
        async with SqliteStore(settings.database) as store, build_gate(settings, store) as gate:
            yield gate
    else:
        async with build_gate(settings, None) as gate:
            yield gate


async def moderate_lines(
    settings: Settings, lines: Iterable[str], out: TextIO, key: ConversationKey, direction: Direction
) -> None:
    async with running_gate(settings) as gate:
        for line in lines:
            if not line.strip():
                continue
            text, row = parse_line(line)
            verdict = await gate.check(text, direction, key)
            out.write(result_json(verdict, row) + "\n")
            out.flush()


@click.command("moderate")
@click.option("--channel", default=None, help="Also apply this chat's admin words (platform:channel).")
@click.option("--direction", type=click.Choice(["input", "output"]), default="input",
              help="Judge lines as user messages (default) or as replies.")
def moderate(channel: str | None, direction: str) -> None:
    """Check text from stdin with the bot's moderation gate.

    Each line is a JSON object with a "text" field (an "id" is echoed back) or a
    plain line of text; each gets one JSON line: flagged, categories,
    category_scores (OpenAI's moderation shape), layer and action.
    """
    settings = settings_or_exit()
    key = _channel_key(channel)
    asyncio.run(moderate_lines(settings, sys.stdin, sys.stdout, key, direction))  # type: ignore[arg-type]


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
    async with LayeredGate(GateConfig.from_settings(settings)) as gate:
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
