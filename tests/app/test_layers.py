"""The layering rules in pyproject.toml, run with import-linter: kept today, and each one
catches the kind of import it forbids (so none of them passes vacuously)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("bot", "adapters", "engine", "bench")

# contract id → (file to append to, the violating lines)
VIOLATIONS: dict[str, tuple[str, str]] = {
    "engine-alone": ("engine/registry.py", "import bot.messages\n"),
    "core-below-adapters": (
        "bot/pipeline/answer.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import adapters.base\n",
    ),
    "adapters-below-root": ("adapters/terminal.py", "import bot.app.builder\n"),
    "core-layers": ("bot/persona.py", "import bot.commands.table\n"),
    "ml-in-engine": ("bot/context.py", "import transformers\n"),
    "discord-in-its-adapter": ("adapters/telegram/incoming.py", "import discord\n"),
    "telegram-in-its-adapter": ("bot/messages.py", "import telegram\n"),
    "bench-outside": ("bot/serving.py", "import bench.stats\n"),
    "no-cycles": ("engine/types.py", "import engine.base\n"),
}


def lint(root: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    args = [str(LINT), "--no-cache", *(f"--contract={c}" for c in contracts)]
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=120)


def copy_project(target: Path) -> Path:
    for package in PACKAGES:
        ignore = shutil.ignore_patterns("__pycache__", "*.png")
        shutil.copytree(ROOT / package, target / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


def test_every_contract_is_kept() -> None:
    done = lint(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


@pytest.mark.parametrize("contract", sorted(VIOLATIONS))
def test_each_contract_catches_its_violation(contract: str, tmp_path: Path) -> None:
    root = copy_project(tmp_path)
    path, lines = VIOLATIONS[contract]
    with (root / path).open("a", encoding="utf-8") as module:
        module.write("\n" + lines)

    done = lint(root, contract)

    assert done.returncode != 0, f"{contract} kept despite {lines!r} in {path}"
    assert "BROKEN" in done.stdout


def test_a_core_module_left_out_of_the_layers_is_caught(tmp_path: Path) -> None:
    root = copy_project(tmp_path)
    (root / "bot" / "stray.py").write_text('"""A new module nobody placed in a layer."""\n')

    done = lint(root, "core-layers")

    assert done.returncode != 0 and "stray" in done.stdout
