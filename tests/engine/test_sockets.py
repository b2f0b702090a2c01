"""vLLM's ZMQ socket files go in a directory of the engine's own, removed at close (the
lifeline removes it when Hearth is killed: `test_lifeline`). No vLLM needed: the
directory is made before the model is resolved, and these models never resolve."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from engine.errors import ModelLoadError
from engine.lifeline import SOCKETS_PREFIX
from engine.registry import ModelSpec
from engine.vllm_engine import EngineOptions, VllmEngine

RPC_PATH = "VLLM_RPC_BASE_PATH"


def is_directory(path: Path) -> bool:
    return path.is_dir()


def make_directory(path: Path) -> None:
    path.mkdir()


def any_entries(path: Path) -> bool:
    return any(path.iterdir())


def unresolvable(spec: ModelSpec) -> Path:
    raise OSError(f"no weights for {spec.name} here")


async def test_the_engines_socket_directory_is_removed_at_close(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RPC_PATH, raising=False)
    engine = VllmEngine(ModelSpec("nowhere", "/nonexistent"), unresolvable, EngineOptions())
    with pytest.raises(ModelLoadError):
        await engine.start()
    sockets = Path(os.environ[RPC_PATH])
    assert is_directory(sockets) and sockets.name.startswith(SOCKETS_PREFIX)

    await engine.close()

    assert not is_directory(sockets)
    assert RPC_PATH not in os.environ, "a process started later would inherit a removed directory"


async def test_a_socket_directory_the_owner_chose_is_left_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(RPC_PATH, str(tmp_path))
    engine = VllmEngine(ModelSpec("nowhere", "/nonexistent"), unresolvable, EngineOptions())
    with pytest.raises(ModelLoadError):
        await engine.start()
    await engine.close()

    assert os.environ[RPC_PATH] == str(tmp_path) and is_directory(tmp_path)


async def test_under_a_temporary_directory_too_long_for_a_socket_vllm_keeps_its_own_place(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    deep = tmp_path / ("d" * 60)  # with the socket directory and a uuid: past AF_UNIX's 108 bytes
    make_directory(deep)
    monkeypatch.setenv("TMPDIR", str(deep))
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile reads TMPDIR again
    monkeypatch.delenv(RPC_PATH, raising=False)
    engine = VllmEngine(ModelSpec("nowhere", "/nonexistent"), unresolvable, EngineOptions())
    with pytest.raises(ModelLoadError):
        await engine.start()
    try:
        assert RPC_PATH not in os.environ, "vLLM could not bind a socket there"
        assert not any_entries(deep), "the directory it could not use is gone"
    finally:
        await engine.close()
