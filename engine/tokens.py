"""Counting a prompt's tokens without the server: the model's own tokenizer, or an estimate.

The remote engine asks the server first (`/tokenize`, exact). When the server cannot
say, a local copy of the model's tokenizer (`tokenizer.json` and its chat template,
read with `tokenizers` and Jinja as transformers renders them, without importing
transformers) counts exactly; without one, `estimate_tokens` over-counts on purpose,
so a prompt trimmed to it still fits.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jinja2 import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

from engine.types import ChatMessage

# Byte-level BPE (and SentencePiece with byte fallback) never needs more than one token
# per UTF-8 byte; the chat template adds a few tokens per message. Real models need
# about a quarter of that in English and half in Chinese: an estimate that is safe, not close.
TEMPLATE_TOKENS_PER_MESSAGE = 8
TEMPLATE_TOKENS_PER_PROMPT = 8
TEMPLATE_FILE = "chat_template.jinja"
# The calibrated estimate (`Calibration`): the worst ratio of the last replies, plus a fifth.
CALIBRATION_WINDOW = 64
CALIBRATION_MARGIN = 1.2
SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token")


def estimate_tokens(messages: Sequence[ChatMessage]) -> int:
    """At least as many tokens as a byte-level tokenizer needs for `messages` as a chat."""
    total = TEMPLATE_TOKENS_PER_PROMPT
    for message in messages:
        total += len(f"{message.role}\n{message.content}".encode()) + TEMPLATE_TOKENS_PER_MESSAGE
    return total


class Calibration:
    """The estimate brought close to a server's own counts, from the prompt tokens it
    reports for prompts whose raw estimate is known: scaled by the largest ratio seen
    among the last CALIBRATION_WINDOW replies, plus CALIBRATION_MARGIN, never above the
    raw estimate (which is safe by construction). Without reports: the raw estimate."""

    def __init__(self) -> None:
        self._ratios: deque[float] = deque(maxlen=CALIBRATION_WINDOW)

    def learn(self, estimate: int, reported: int) -> None:
        """One reply's raw estimate and the prompt tokens the server reported for it."""
        if estimate > 0 and reported > 0:
            self._ratios.append(reported / estimate)

    def tokens(self, estimate: int) -> int:
        if not self._ratios:
            return estimate
        return min(estimate, math.ceil(estimate * max(self._ratios) * CALIBRATION_MARGIN))


class LocalTokenizer:
    """A model directory's tokenizer and chat template, counting as the server renders."""

    def __init__(self, tokenizer: Any, template: Any, special: dict[str, str]) -> None:
        self._tokenizer = tokenizer
        self._template = template
        self._special = special

    @classmethod
    def load(cls, directory: Path) -> LocalTokenizer:
        """Raises OSError or ValueError when `directory` lacks a usable tokenizer or template."""
        config = _read_json(directory / "tokenizer_config.json")
        tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        special = {name: text for name in SPECIAL_TOKENS if (text := _token_text(config.get(name)))}
        return cls(tokenizer, _compile(_template_source(directory, config)), special)

    @property
    def raw(self) -> Any:
        """The `tokenizers.Tokenizer` itself (its added and special tokens)."""
        return self._tokenizer

    def count(self, messages: Sequence[ChatMessage]) -> int:
        """Raises ValueError when the template rejects the conversation."""
        try:
            text = self._template.render(
                messages=[m.as_dict() for m in messages], add_generation_prompt=True, **self._special
            )
        except TemplateError as exc:
            raise ValueError(f"chat template: {exc}") from exc
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return data


def _token_text(value: object) -> str | None:
    """A special token as tokenizer_config.json writes it: a string or an AddedToken dict."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _template_source(directory: Path, config: dict[str, Any]) -> str:
    path = directory / TEMPLATE_FILE
    if path.is_file():
        return path.read_text("utf-8")
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: the default one
        template = next((t.get("template") for t in template if t.get("name") == "default"), None)
    if not isinstance(template, str):
        raise ValueError(f"{directory}: no chat template")
    return template


def _compile(source: str) -> Any:
    """The template in the environment transformers renders chat templates in."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: dt.datetime.now().strftime(fmt)
    try:
        return env.from_string(source)
    except TemplateError as exc:
        raise ValueError(f"chat template: {exc}") from exc


def _tojson(value: object, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def _raise(message: str) -> None:
    raise ValueError(message)
