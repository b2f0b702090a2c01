"""No orphans: a watchdog process that ends vLLM's engine processes if Hearth dies first.

vLLM's engine core runs in a child process and does not notice its parent's
death: after a `kill -9` of Hearth it kept running (and holding memory) for as
long as the machine did. `Lifeline` starts `python -m engine.lifeline` with a pipe
on its stdin and tells it which processes to watch. Whatever ends Hearth, the
pipe closes; the watchdog then terminates every watched process that is still
the same process (pid and start time), parents before their children, removes the
directories it was given (vLLM's socket files: see `SOCKETS_PREFIX`), and exits. It runs
in its own session, so a Ctrl-C meant for Hearth does not take it first.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from pathlib import Path

import psutil

TERMINATE_WAIT_S = 3.0  # SIGTERM, then SIGKILL after this
# The name of each directory Hearth makes for vLLM's ZMQ socket files begins so; the
# watchdog removes no other (vLLM names a socket by a random uuid and leaves its file
# behind when its engine core is killed: 2,800 had gathered in /tmp on the machine this
# was written on).
SOCKETS_PREFIX = "hearth-vllm-sockets-"


class Lifeline:
    """Hearth's end of the watchdog: `watch` pids as they start, `release` them as they stop."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self._watched: dict[int, float] = {}

    def watch(self, pids: list[int]) -> None:
        """End these processes if Hearth dies before `release`."""
        started = {pid: _started(pid) for pid in pids}
        self._watched.update(started)
        self._send([f"watch {pid} {at}" for pid, at in started.items()])

    def release(self, pids: list[int]) -> None:
        """Hearth stopped these itself (or `end` did); forget them."""
        for pid in pids:
            self._watched.pop(pid, None)
        self._send([f"release {pid}" for pid in pids])

    def remove_at_end(self, directory: Path) -> None:
        """Remove `directory` (named SOCKETS_PREFIX…) once Hearth has ended, however it ends,
        after the watched processes."""
        self._send([f"remove {directory}"])

    def end(self, pids: list[int], grace_s: float = TERMINATE_WAIT_S) -> int:
        """End these watched processes now if they still run (blocking, up to `grace_s`
        before SIGKILL); how many were still running."""
        return end_processes({pid: self._watched.get(pid, 0.0) for pid in pids}, grace_s)

    @property
    def watchdog_pid(self) -> int | None:
        """The watchdog's own pid, once it runs (a child of Hearth's, never one to watch)."""
        return self._process.pid if self._process is not None else None

    def close(self) -> None:
        """Stop the watchdog (everything watched should be released by now)."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            assert process.stdin is not None
            process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(TERMINATE_WAIT_S + 1)

    def _send(self, lines: list[str]) -> None:
        if not lines:
            return
        process = self._ensure()
        assert process.stdin is not None
        process.stdin.write("".join(f"{line}\n" for line in lines))
        process.stdin.flush()

    def _ensure(self) -> subprocess.Popen[str]:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "engine.lifeline"], stdin=subprocess.PIPE, text=True,
                start_new_session=True, close_fds=True,
            )
        return self._process


def _started(pid: int) -> float:
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return 0.0


def watchdog(lines: list[str] | None = None) -> int:
    """The watchdog: read `watch PID STARTED` / `release PID` / `remove DIRECTORY` lines
    until end of input, then end whatever is still watched and remove the directories
    (only those named SOCKETS_PREFIX…). Returns how many processes it ended."""
    watched: dict[int, float] = {}
    directories: list[Path] = []
    for line in lines if lines is not None else sys.stdin:
        verb, _, rest = line.rstrip("\n").partition(" ")
        if verb == "remove" and Path(rest).name.startswith(SOCKETS_PREFIX):
            directories.append(Path(rest))
            continue
        pid_text, _, started = rest.strip().partition(" ")
        if not pid_text.isdigit():
            continue
        if verb == "watch":
            watched[int(pid_text)] = float(started or 0)
        elif verb == "release":
            watched.pop(int(pid_text), None)
    ended = end_processes(watched)
    for directory in directories:
        shutil.rmtree(directory, ignore_errors=True)
    return ended


def end_processes(watched: dict[int, float], grace_s: float = TERMINATE_WAIT_S) -> int:
    """Terminate (then kill) each pid still running as the process started at its time;
    how many there were. Parents first: vLLM's engine core ends its own workers, and a
    worker ended under it mid-step made it log a fatal error with a traceback."""
    alive = [p for pid, started in watched.items() if (p := _same_process(pid, started)) is not None]
    pids = {process.pid for process in alive}
    roots = [process for process in alive if not _under(process, pids)]
    _signal(roots, "terminate")
    _, left = psutil.wait_procs(roots, timeout=grace_s)
    rest = [process for process in alive if process not in roots and process.is_running()]
    _signal(rest, "terminate")
    _, still = psutil.wait_procs(rest + left, timeout=grace_s if rest else 0)
    _signal(still, "kill")
    return len(alive)


def _under(process: psutil.Process, pids: set[int]) -> bool:
    """Whether one of `process`'s ancestors is among `pids`."""
    try:
        return any(parent.pid in pids for parent in process.parents())
    except psutil.Error:
        return False


def _signal(processes: list[psutil.Process], how: str) -> None:
    for process in processes:
        with contextlib.suppress(psutil.Error):
            getattr(process, how)()


def _same_process(pid: int, started: float) -> psutil.Process | None:
    """The process, unless it is gone or its pid now belongs to another one."""
    try:
        process = psutil.Process(pid)
        if started and abs(process.create_time() - started) > 0.01:
            return None
        return process
    except psutil.Error:
        return None


if __name__ == "__main__":
    watchdog()
