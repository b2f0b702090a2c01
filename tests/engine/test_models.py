"""engine.models: which builder a registry source goes to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.builds import MARKER_NAME
from engine.models import ModelResolver, split_shape
from engine.registry import ModelSpec


def test_shape_names_split_into_shape_and_quantization() -> None:
    assert split_shape("shape-qwen2.5-0.5b") == ("qwen2.5-0.5b", None)
    assert split_shape("shape-qwen2.5-7b-awq") == ("qwen2.5-7b", "awq")


def test_a_hub_id_is_passed_through(tmp_path: Path) -> None:
    hub = "Qwen/Qwen2.5-0.5B-Instruct"
    assert ModelResolver(tmp_path)(ModelSpec("q", hub)) == hub


def test_an_unknown_builtin_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown built-in"):
        ModelResolver(tmp_path)(ModelSpec("x", "builtin:nonsense"))


def test_an_unknown_shape_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown shape"):
        ModelResolver(tmp_path)(ModelSpec("x", "builtin:shape-gpt-9"))


def test_a_pypi_source_goes_to_its_converted_directory(tmp_path: Path) -> None:
    target = tmp_path / "models" / "pypi-some-model"
    target.mkdir(parents=True)
    (target / MARKER_NAME).write_text(json.dumps({"format": 1, "package": "some-model"}))
    assert ModelResolver(tmp_path)(ModelSpec("s", "pypi:Some_Model")) == target
