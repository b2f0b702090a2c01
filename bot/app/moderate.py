"""`hearth moderate`: try the running bot's moderation gate on text from stdin."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any, TextIO

import click

from bot.app.cli_support import settings_or_exit
from bot.app.gate import build_gate
from bot.app.settings import Settings
from bot.app.stores import store_for
from bot.messages import ConversationKey, Verdict
from bot.moderation.base import Direction
from bot.moderation.gate import LayeredGate

DEFAULT_SCOPE = ConversationKey("cli", "moderate")


def _channel_key(channel: str | None) -> ConversationKey:
    if channel is None:
        return DEFAULT_SCOPE
    platform, _, name = channel.partition(":")
    if not platform or not name:
        raise click.BadParameter("expected platform:channel, e.g. discord:1234", param_hint="--channel")
    return ConversationKey(platform, name)


NO_TEXT = 'a JSON object needs a "text" string to check'


def parse_line(line: str) -> tuple[str | None, dict[str, Any]]:
    """The text to check, and the input object (a plain line becomes {"text": line}).
    The text is None for a JSON object without a "text" string: nothing to check, but
    its `id` can still be echoed with the error. A line that only looks like JSON (it
    does not parse as an object) is plain text."""
    stripped = line.rstrip("\r\n")
    if stripped.lstrip().startswith("{"):
        try:
            row = json.loads(stripped)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict):
            text = row.get("text")
            return (text if isinstance(text, str) else None), row
    return stripped, {"text": stripped}


def result_json(verdict: Verdict, row: dict[str, Any], line: int) -> str:
    """One verdict as a JSON line: the input's `line` number (1-based, blank lines counted
    though not judged, so every verdict can be matched to its input) and `id`, if it had one."""
    out = _named(row, line)
    out |= {
        "flagged": verdict.flagged,
        "categories": verdict.categories,
        "category_scores": verdict.category_scores,
        "layer": verdict.layer,
        "action": verdict.action,
    }
    return json.dumps(out, ensure_ascii=False)


def error_json(error: str, row: dict[str, Any], line: int) -> str:
    """An input line that could not be judged, as a JSON line: its `line`, its `id` (if
    it had one) and `error`."""
    return json.dumps(_named(row, line) | {"error": error}, ensure_ascii=False)


def _named(row: dict[str, Any], line: int) -> dict[str, Any]:
    return {"line": line} | ({"id": row["id"]} if "id" in row else {})


@asynccontextmanager
async def running_gate(settings: Settings) -> AsyncIterator[LayeredGate]:
    """The bot's gate: its settings and the admin words stored in its database (if any)."""
    if settings.database_url is None and not settings.database.exists():
        async with build_gate(settings, None) as gate:
            yield gate
        return
    store = store_for(settings)
    await store.open()
    try:
        async with build_gate(settings, store) as gate:
            yield gate
    finally:
        await store.close()


async def moderate_lines(
    settings: Settings, lines: Iterable[str], out: TextIO, key: ConversationKey, direction: Direction
) -> None:
    async with running_gate(settings) as gate:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            text, row = parse_line(line)
            if text is None:
                out.write(error_json(NO_TEXT, row, number) + "\n")
            else:
                out.write(result_json(await gate.check(text, direction, key), row, number) + "\n")
            out.flush()


@click.command("moderate")
@click.option("--channel", default=None, help="Also apply this chat's admin words (platform:channel).")
@click.option("--direction", type=click.Choice(["input", "output"]), default="input",
              help="Judge lines as user messages (default) or as replies.")
def moderate(channel: str | None, direction: str) -> None:
    """Check text from stdin with the bot's moderation gate.

    Each line is a JSON object with a "text" field (an "id" is echoed back) or a
    plain line of text; each but a blank one gets one JSON line: its line number,
    flagged, categories, category_scores (OpenAI's moderation shape), layer and action;
    a JSON object without a "text" string gets its line number, its id and an "error".
    """
    settings = settings_or_exit()
    key = _channel_key(channel)
    asyncio.run(moderate_lines(settings, sys.stdin, sys.stdout, key, direction))  # type: ignore[arg-type]
