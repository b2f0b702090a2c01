"""`hearth bench moderation`: quality and latency per language on a labelled set."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from bot.app.cli import main


def test_bench_reports_quality_and_latency_per_language(tmp_path: Path) -> None:
    data = tmp_path / "set.jsonl"
    rows = [
        ("fuck you", "en", "toxic"), ("hello", "en", "benign"),
        ("傻逼", "zh", "toxic"), ("你好", "zh", "benign"),
    ]
    lines = [json.dumps({"text": t, "lang": lang, "label": label, "kind": "x"}) for t, lang, label in rows]
    data.write_text("\n".join(lines) + "\n", "utf-8")

    args = ["bench", "moderation", "--json", "--data", str(data), "--iterations", "10"]
    result = CliRunner().invoke(main, args, env={"HEARTH_DATA_DIR": str(tmp_path)})

    report = json.loads(result.output)
    assert report["quality"]["en"]["recall"] == 1.0 and report["quality"]["zh"]["false_positive_rate"] == 0.0
    assert set(report["latency"]["zh"]) == {"100", "4096"}
    assert report["latency"]["en"]["4096"]["p99_ms"] > 0
