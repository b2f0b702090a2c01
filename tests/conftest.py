"""Shared fixtures: settings on a temporary data dir, an app on the fake engine."""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bot.app.builder import App, HearthBuilder
from bot.app.settings import Settings, load_settings
from bot.moderation import Gate
from bot.store import SqliteStore, Store
from engine.base import Engine
from engine.fake import FakeEngine
from engine.registry import Registry
from tests.fakes import RecordingAdapter

if TYPE_CHECKING:
    from engine.vllm_engine import VllmEngine

TODAY = dt.date(2026, 11, 22)


# Tests send messages faster than any person: rate limits are off unless a test turns
# them on (tests/core/test_quotas.py does).
NO_RATE_LIMITS = {"user_messages_per_minute": 0, "channel_messages_per_minute": 0}


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings that ignore any developer's .env and environment."""
    return load_settings(_env_file=None, data_dir=data_dir, **{**NO_RATE_LIMITS, **overrides})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, admin_ids="telegram:4242")


@pytest.fixture
def registry() -> Registry:
    return Registry.load()


@pytest.fixture
def engine(registry: Registry) -> FakeEngine:
    return FakeEngine(registry.get("demo"))


@asynccontextmanager
async def open_app(
    settings: Settings, engine: Engine, *, gate: Gate | Callable[[Store], Gate] | None = None
) -> AsyncIterator[App]:
    """Hearth as `hearth run` wires it, on `engine` and a real SQLite file.

    `gate` replaces the layered gate: a gate, or a function of the store that makes one."""
    async with SqliteStore(settings.database) as store:
        await engine.start()
        builder = HearthBuilder(settings).engine(engine).store(store).today(lambda: TODAY)
        if gate is not None:
            builder.gate(gate(store) if callable(gate) else gate)
        async with builder.build() as built:
            yield built


@pytest.fixture
async def app(settings: Settings, engine: FakeEngine) -> AsyncIterator[App]:
    """Hearth on the fake engine (the `engine` fixture) and a real SQLite file."""
    async with open_app(settings, engine) as built:
        yield built


@pytest.fixture
def adapter() -> RecordingAdapter:
    return RecordingAdapter()


# --- the real engine: one per test session, on the offline demo model -------------

KV_CACHE_GIB = 0.25


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with the demo model already built (and demo-awq where AWQ runs here),
    shared with subprocesses."""
    from engine.models import ModelResolver

    path = tmp_path_factory.mktemp("hearth-data")
    resolve = ModelResolver(path)
    registry = Registry.load()
    for name in ("demo", "demo-awq") if awq_runs_here() else ("demo",):
        resolve(registry.get(name))
    return path


def awq_runs_here() -> bool:
    """Whether vLLM can serve an AWQ model on this machine: on a GPU, or on a CPU with
    AVX-512 (`engine.devices`, as Hearth itself decides before loading one)."""
    from engine.devices import device_problem

    return device_problem(Registry.load().get("demo-awq")) is None


@dataclass(frozen=True)
class SwitchTarget:
    """A second model for the real engine to switch to: its registry name, quantization,
    and the registry overlay that names it (HEARTH_MODELS_FILE), if any."""

    name: str
    quantization: str
    models_file: Path | None = None


@pytest.fixture(scope="session")
def switch_target(data_dir: Path) -> SwitchTarget:
    """demo-awq where AWQ runs here (`awq_runs_here`), else a bf16 demo model with other
    weights, named in a registry overlay."""
    if awq_runs_here():
        return SwitchTarget("demo-awq", "awq")
    from engine.demo_model import build_demo_model

    weights = build_demo_model(data_dir / "models" / "demo-other", seed=7)
    overlay = data_dir / "models-other.toml"
    overlay.write_text(
        f'[models.demo-other]\nsource = "{weights}"\nquantization = "none"\nmax_model_len = 2048\n'
        'device = "any"\ndescription = "The demo model with other weights (tests)."\n', "utf-8")
    return SwitchTarget("demo-other", "none", overlay)


@pytest.fixture(scope="session")
async def real_engine(data_dir: Path) -> AsyncIterator[VllmEngine]:
    """vLLM's AsyncLLM in-process on the demo model, shared by every engine test."""
    from engine.models import ModelResolver
    from engine.vllm_engine import EngineOptions, VllmEngine

    engine = VllmEngine(
        Registry.load().get("demo"), ModelResolver(data_dir), EngineOptions(kv_cache_gib=KV_CACHE_GIB)
    )
    async with engine:
        yield engine


@contextmanager
def small_tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` ("4m") mounted at `mount` (made), unmounted afterwards: a disk to fill.
    Skips the test where mounting is not allowed (needs root and CAP_SYS_ADMIN)."""
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
