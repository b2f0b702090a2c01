"""`hearth moderate` as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bot.app.moderate import NO_TEXT
from bot.messages import WordRule
from bot.store import SqliteStore

ROOT = Path(__file__).resolve().parents[2]
INPUT = "\n".join([
    json.dumps({"text": "you are a f u c k i n g idiot", "id": 1}),
    json.dumps({"text": "这张照片拍得太逼真了", "id": 2}),
    "have a lovely day",
    "",
    json.dumps({"text": "pineapple on pizza", "id": 4}),
    "",
]) + "\n"


# The 17 evasions of issue 21's bug reports: 7 were caught, 10 passed (small capitals,
# regional indicators, parenthesised letters, spoilers, markdown, commas, emoji twice,
# keycaps, traditional Chinese). Every one is caught, in both directions.
EVASIONS = (
    "f u c k you", "ｆｕｃｋ you", "fυck yοu", "sh1t head", "fuuuuuck you", "f\u200bu\u200bc\u200bk you",
    "f*ck you", "ꜰᴜᴄᴋ you", "🇫🇺🇨🇰 you", "⒡⒰⒞⒦ you", "fu||ck|| you", "__f__uck you", "f,u,c,k you",
    "f🙂u🙂c🙂k you", "傻🙂逼", "sh1\ufe0f\u20e3t head", "幹你娘",
)


def run_moderate(tmp_path: Path, *args: str, lines: str = INPUT) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    env |= {"HEARTH_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "moderate", *args],
        input=lines, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, check=True,
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_moderate_prints_one_verdict_per_line(tmp_path: Path) -> None:
    results = run_moderate(tmp_path)

    assert [r["flagged"] for r in results] == [True, False, False, False]
    assert [r.get("id") for r in results] == [1, 2, None, 4]
    assert [r["line"] for r in results] == [1, 2, 3, 5]  # the blank fourth line is counted, not judged
    assert results[0]["categories"]["harassment"] is True
    assert set(results[0]["category_scores"]) == set(results[0]["categories"])
    assert results[0]["layer"] == "wordlist"


def test_a_json_line_without_text_gets_an_error_with_its_line_and_id(tmp_path: Path) -> None:
    lines = "\n".join([json.dumps({"id": 7}), json.dumps({"id": "x", "text": None}), "{not json",
                        json.dumps({"id": 9, "text": "hello"})]) + "\n"

    results = run_moderate(tmp_path, lines=lines)

    assert [(r["line"], r.get("id"), r.get("error")) for r in results[:2]] == [
        (1, 7, NO_TEXT), (2, "x", NO_TEXT)]
    assert "flagged" not in results[0]
    assert results[2]["line"] == 3 and results[2]["flagged"] is False  # plain text that looks like JSON
    assert (results[3]["line"], results[3]["id"], results[3]["flagged"]) == (4, 9, False)


async def test_moderate_uses_the_admin_words_in_the_bots_database(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "hearth.sqlite3") as store:
        await store.add_word(WordRule("global", "pineapple", "block", "harassment"))
        await store.add_word(WordRule("discord:42", "lovely", "block", "harassment"))

    results = run_moderate(tmp_path, "--channel", "discord:42")

    assert [r["flagged"] for r in results] == [True, False, True, True]
    assert results[2]["layer"] == results[3]["layer"] == "admin"



def test_every_evasion_of_the_bug_reports_is_caught_as_input_and_as_output(tmp_path: Path) -> None:
    lines = "".join(json.dumps({"text": text, "id": n}) + "\n" for n, text in enumerate(EVASIONS))

    for direction in ("input", "output"):
        results = run_moderate(tmp_path, "--direction", direction, lines=lines)
        assert [EVASIONS[r["id"]] for r in results if not r["flagged"]] == []
