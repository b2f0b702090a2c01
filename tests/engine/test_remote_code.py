"""A model that runs its repository's own code loads only with HEARTH_TRUST_REMOTE_CODE (no vLLM needed:
the refusal comes before anything is resolved, downloaded or started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ModelLoadError
from engine.registry import ModelSpec, Registry
from engine.vllm_engine import EngineOptions, VllmEngine


def test_glm4_runs_repository_code_and_is_marked_so() -> None:
    assert Registry.load().get("glm4-9b-gptq").trust_remote_code


async def test_an_entry_with_trust_remote_code_is_refused_before_anything_is_fetched() -> None:
    resolved: list[ModelSpec] = []

    def resolve(spec: ModelSpec) -> Path:
        resolved.append(spec)
        return Path("/nonexistent")

    engine = VllmEngine(Registry.load().get("glm4-9b-gptq"), resolve, EngineOptions())
    with pytest.raises(ModelLoadError, match="HEARTH_TRUST_REMOTE_CODE=1"):
        await engine.start()
    with pytest.raises(ModelLoadError, match="HEARTH_TRUST_REMOTE_CODE=1"):
        await engine.switch(Registry.load().get("glm4-9b-gptq"))

    assert resolved == [], "nothing resolved, downloaded or installed"
    await engine.close()
