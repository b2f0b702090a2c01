"""Model builds and conversions run one at a time (transformers' first import is not
thread-safe), and a conversion that meets transformers half imported is tried once more."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from engine import packaged
from engine.heavy import exclusively, half_imported
from engine.packaged import Package

HALF = ModuleNotFoundError("Could not import module 'LlamaConfig'. Are this object's requirements defined "
                           "correctly? Set the logging verbosity to DEBUG for the original import error.")
PACKAGE = Package("llm-test", "1", "MIT", (Path("model.gguf"),), None)


def test_builds_never_overlap() -> None:
    running, overlapped = [0], []

    def job() -> None:
        running[0] += 1
        overlapped.append(running[0] > 1)
        time.sleep(0.02)
        running[0] -= 1

    threads = [threading.Thread(target=exclusively, args=(job,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlapped == [False] * 4


def test_transformers_half_imported_is_recognised() -> None:
    assert half_imported(HALF)
    assert half_imported(AttributeError("module 'transformers' has no attribute 'LlamaConfig'"))
    assert not half_imported(ModuleNotFoundError("No module named 'gguf'"))
    assert not half_imported(AttributeError("'NoneType' object has no attribute 'config'"))


def test_a_conversion_that_met_half_imported_transformers_runs_once_more(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = []

    def convert(package: Package, staging: Path) -> None:
        calls.append(staging)
        if len(calls) == 1:
            raise HALF

    monkeypatch.setattr(packaged, "_convert_now", convert)
    packaged._convert(PACKAGE, tmp_path)
    assert calls == [tmp_path, tmp_path]


def test_any_other_failure_is_not_retried(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = []

    def convert(package: Package, staging: Path) -> None:
        calls.append(staging)
        raise ModuleNotFoundError("No module named 'gguf'")

    monkeypatch.setattr(packaged, "_convert_now", convert)
    with pytest.raises(ModuleNotFoundError, match="gguf"):
        packaged._convert(PACKAGE, tmp_path)
    assert len(calls) == 1
