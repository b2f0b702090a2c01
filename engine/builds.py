"""Model directories Hearth writes itself (demo models, realistic shapes, converted
packages): built once, in a temporary sibling, and renamed into place.

A target directory is either absent or complete: a marker file written last holds
the build's parameters, and a directory whose marker matches is reused as is.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

MARKER_NAME = "hearth-build.json"

log = logging.getLogger(__name__)


def build_once(
    target: Path, params: Mapping[str, Any], write: Callable[[Path], None], *, marker: str = MARKER_NAME
) -> Path:
    """Run `write(staging)` and rename the result to `target`, unless `target` already
    holds a build with these `params` (JSON values: lists, not tuples). Returns `target`."""
    target = Path(target)
    if is_built(target, params, marker):
        return target
    check_replaceable(target, marker)
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        write(staging)
        (staging / marker).write_text(json.dumps(dict(params), indent=2) + "\n")
        _install(staging, target, params, marker)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("built %s in %.1f s", target, time.monotonic() - started)
    return target


def is_built(target: Path, params: Mapping[str, Any], marker: str = MARKER_NAME) -> bool:
    try:
        return bool(json.loads((target / marker).read_text()) == dict(params))
    except (OSError, ValueError):
        return False


def check_replaceable(target: Path, marker: str = MARKER_NAME) -> None:
    """Refuse to replace a non-empty directory that Hearth did not build."""
    if target.is_dir() and any(target.iterdir()) and not (target / marker).is_file():
        raise FileExistsError(f"{target} is not empty and holds no {marker}")
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a directory")


def _install(staging: Path, target: Path, params: Mapping[str, Any], marker: str) -> None:
    """Rename `staging` to `target`, moving an older build out of the way."""
    staging.chmod(0o755)  # mkdtemp (and safetensors' writer) make files private
    for path in staging.iterdir():
        path.chmod(0o644)
    if target.is_dir() and any(target.iterdir()):
        old = staging.with_name(staging.name + ".old")
        os.replace(target, old)
        shutil.rmtree(old, ignore_errors=True)
    try:
        os.replace(staging, target)  # rename(2) may replace an empty directory only
    except OSError:
        if not is_built(target, params, marker):  # else a concurrent build won the race
            raise
