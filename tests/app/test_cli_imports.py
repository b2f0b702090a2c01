"""The light `hearth` commands stay light: they import neither the benchmarks nor a
platform SDK nor the ML stack (those load only in the commands that use them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Top-level packages that only `hearth bench`, `hearth run` (serving) or the engine may import.
HEAVY = ("bench", "matplotlib", "psutil", "discord", "telegram", "vllm", "torch")
# Runs `python -m bot ARGS` in this interpreter, then writes the modules it imported to a file.
PROBE = """
import json, runpy, sys
out, args = sys.argv[1], json.loads(sys.argv[2])
sys.argv = ["hearth", *args]
code = 0
try:
    runpy.run_module("bot", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
with open(out, "w", encoding="utf-8") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


def imported_by(args: list[str], tmp_path: Path) -> tuple[object, set[str]]:
    """The exit code of `hearth ARGS` and the top-level packages it imported."""
    out = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    env.update(HEARTH_DATA_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    subprocess.run(
        [sys.executable, "-c", PROBE, str(out), json.dumps(args)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=True,
    )
    report = json.loads(out.read_text("utf-8"))
    return report["code"], {name.partition(".")[0] for name in report["modules"]}


@pytest.mark.parametrize("args", [["models"], ["run", "--help"]], ids=" ".join)
def test_light_commands_import_nothing_heavy(args: list[str], tmp_path: Path) -> None:
    code, packages = imported_by(args, tmp_path)

    assert code in (0, None)
    assert sorted(packages & set(HEAVY)) == []


def test_the_probe_sees_what_a_command_imports(tmp_path: Path) -> None:
    """`hearth bench --help` loads the bench package: the probe is not blind."""
    code, packages = imported_by(["bench", "--help"], tmp_path)

    assert code in (0, None) and "bench" in packages
