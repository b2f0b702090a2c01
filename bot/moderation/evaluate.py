"""The numbers behind `hearth bench moderation`: quality on the labelled set, and latency."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from bot.messages import ConversationKey
from bot.moderation.base import Gate

EVAL_FILE = "eval.jsonl"
BENCH_KEY = ConversationKey("bench", "moderation")
LATENCY_LENGTHS = (100, 4096)
LANGUAGES = ("en", "zh")


@dataclass(frozen=True, slots=True)
class EvalItem:
    """One labelled message of the evaluation set."""

    text: str
    lang: str
    label: str  # "toxic" or "benign"
    kind: str
    split: str = "dev"

    @property
    def toxic(self) -> bool:
        return self.label == "toxic"


def load_eval(path: Path | None = None) -> list[EvalItem]:
    """The shipped set (bot/moderation/data/eval.jsonl), or another file of the same shape."""
    if path is None:
        text = resources.files("bot.moderation").joinpath("data", EVAL_FILE).read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    items = []
    for line in text.splitlines():
        if line.strip():
            row = json.loads(line)
            split = row.get("split", "dev")
            items.append(EvalItem(row["text"], row["lang"], row["label"], row["kind"], split))
    return items


def confusion(pairs: Iterable[tuple[bool, bool]]) -> dict[str, Any]:
    """Precision, recall and false-positive rate from (truly toxic, flagged) pairs."""
    tp = fp = tn = fn = 0
    for toxic, flagged in pairs:
        tp += toxic and flagged
        fn += toxic and not flagged
        fp += flagged and not toxic
        tn += not toxic and not flagged
    return {
        "items": tp + fp + tn + fn, "tp": tp, "fp": fp, "tn": tn, "fn": fn,
        "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
        "recall": round(tp / (tp + fn), 4) if tp + fn else 1.0,
        "false_positive_rate": round(fp / (fp + tn), 4) if fp + tn else 0.0,
    }


async def judge(gate: Gate, items: Sequence[EvalItem]) -> list[bool]:
    """Whether the gate flags each item (as a user message)."""
    return [(await gate.check(item.text, "input", BENCH_KEY)).flagged for item in items]


def quality(items: Sequence[EvalItem], flagged: Sequence[bool]) -> dict[str, Any]:
    """Per language (and per split within it): the confusion figures, and every mistake."""
    report: dict[str, Any] = {}
    for lang in sorted({i.lang for i in items}):
        rows = [(i, f) for i, f in zip(items, flagged, strict=True) if i.lang == lang]
        report[lang] = confusion((i.toxic, f) for i, f in rows)
        report[lang]["by_split"] = {
            split: confusion((i.toxic, f) for i, f in rows if i.split == split)
            for split in sorted({i.split for i, _ in rows})
        }
        report[lang]["mistakes"] = [
            {"text": i.text, "label": i.label, "kind": i.kind, "split": i.split}
            for i, f in rows if f != i.toxic
        ]
    return report


def sample_text(items: Sequence[EvalItem], lang: str, length: int) -> str:
    """Benign text of exactly `length` characters (benign: every layer runs to the end)."""
    pieces = [i.text for i in items if i.lang == lang and not i.toxic]
    text, index = "", 0
    while len(text) < length:
        text += pieces[index % len(pieces)] + " "
        index += 1
    return text[:length]


async def latency(gate: Gate, text: str, iterations: int) -> dict[str, float]:
    """p50/p99 of one `check`, in milliseconds, after a warm-up call."""
    await gate.check(text, "input", BENCH_KEY)
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        await gate.check(text, "input", BENCH_KEY)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 4),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 4),
        "iterations": iterations,
    }


async def benchmark(gate: Gate, items: Sequence[EvalItem], iterations: int = 1000) -> dict[str, Any]:
    """Everything `hearth bench moderation` reports, as one dict."""
    flagged = await judge(gate, items)
    timings = {
        lang: {str(n): await latency(gate, sample_text(items, lang, n), iterations) for n in LATENCY_LENGTHS}
        for lang in LANGUAGES if any(i.lang == lang and not i.toxic for i in items)
    }
    return {"quality": quality(items, flagged), "latency": timings}
