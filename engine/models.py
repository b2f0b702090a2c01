"""Where a registry entry's weights come from: built offline, a local path, or a hub id."""

from __future__ import annotations

import logging
from pathlib import Path

from engine.registry import ModelSpec

log = logging.getLogger(__name__)

DEMO_BUILDS = {"demo": None, "demo-awq": "awq"}


class ModelResolver:
    """Turns a `ModelSpec` into something vLLM can load; builds demo models on first use."""

    def __init__(self, data_dir: Path) -> None:
        self._models_dir = data_dir / "models"

    def __call__(self, spec: ModelSpec) -> Path | str:
        builtin = spec.builtin
        if builtin is None:
            return spec.source
        if builtin not in DEMO_BUILDS:
            raise ValueError(f"unknown built-in model {builtin!r}")
        from engine.demo_model import build_demo_model  # torch and transformers: seconds to import

        target = self._models_dir / builtin
        log.info("preparing built-in model %s in %s", builtin, target)
        return build_demo_model(target, quantize=DEMO_BUILDS[builtin])  # type: ignore[arg-type]
