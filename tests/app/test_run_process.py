"""`hearth run` as a user runs it: a subprocess with the real engine on the demo model."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.engine

START_TIMEOUT_S = 240
STOP_BOUND_S = 30  # the runner's own bound is 10 s; this only keeps a hung test finite


def hearth_env(data_dir: Path, db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    env.update(
        HEARTH_DATA_DIR=str(data_dir),
        HEARTH_DB_PATH=str(db),
        HEARTH_KV_CACHE_GIB="0.25",
        HEARTH_MAX_REPLY_TOKENS="16",
        HF_HUB_OFFLINE="1",
    )
    return env


def test_piped_chat_answers_each_line_and_exits(data_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "chat.sqlite3"
    done = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        input="hello there\n你好，今天怎么样？\n",
        capture_output=True, text=True, cwd=tmp_path, env=hearth_env(data_dir, db),
        timeout=START_TIMEOUT_S,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT role, text FROM messages ORDER BY id").fetchall()
    assert [r[0] for r in rows] == ["user", "assistant", "user", "assistant"]
    assert rows[0][1] == "hello there" and rows[2][1] == "你好，今天怎么样？"
    assert rows[1][1].strip() in done.stdout and rows[3][1].strip() in done.stdout
    assert done.stdout.index(rows[1][1].strip()) < done.stdout.rindex(rows[3][1].strip())
    assert done.stderr.count("offline demo") == 1, "the demo notice must be said exactly once"
    assert "Traceback" not in done.stderr


def test_sigterm_shuts_down_cleanly(data_dir: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=tmp_path, env=hearth_env(data_dir, tmp_path / "db.sqlite3"),
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        for line in proc.stderr:  # bounded: the process ends or the deadline passes
            if "serving model demo" in line or time.monotonic() > deadline:
                break
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_BOUND_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_chosen_model_that_will_not_load_falls_back_and_still_answers(
    data_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    registry = tmp_path / "models.toml"
    registry.write_text(f'[models.broken]\nsource = "{broken}"\nmax_model_len = 2048\n', "utf-8")
    env = hearth_env(data_dir, tmp_path / "db.sqlite3")
    env.update(HEARTH_MODELS_FILE=str(registry), HEARTH_MODEL="broken", HEARTH_FALLBACK_MODELS="demo")

    done = subprocess.run(
        [sys.executable, "-m", "bot", "run"], input="/status\nhello\n", capture_output=True, text=True,
        cwd=tmp_path, env=env, timeout=START_TIMEOUT_S,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    assert "model: demo" in done.stdout and "fallback for broken" in done.stdout
    assert "serving fallback demo because broken" in done.stderr
    with sqlite3.connect(tmp_path / "db.sqlite3") as conn:
        roles = [r[0] for r in conn.execute("SELECT role FROM messages ORDER BY id")]
    assert roles == ["user", "assistant"]
