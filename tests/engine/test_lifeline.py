"""No orphans: whatever kills the process that started them, watched processes go too."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil

from engine.lifeline import SOCKETS_PREFIX, watchdog

PARENT = """
import subprocess, sys, time
from engine.lifeline import Lifeline
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
lifeline = Lifeline()
lifeline.watch([child.pid])
print(child.pid, flush=True)
time.sleep(120)
"""
# The same, with a directory of socket files for the lifeline to remove.
PARENT_WITH_SOCKETS = """
import pathlib, subprocess, sys, tempfile, time
from engine.lifeline import SOCKETS_PREFIX, Lifeline
sockets = pathlib.Path(tempfile.mkdtemp(prefix=SOCKETS_PREFIX, dir=sys.argv[1]))
(sockets / "a-socket-file").write_text("")  # (a plain file: a socket's path may not fit AF_UNIX's 108 bytes)
lifeline = Lifeline()
lifeline.remove_at_end(sockets)
print(sockets, flush=True)
time.sleep(120)
"""
GONE_WITHIN_S = 10.0
# An engine core and its worker, as vLLM runs them: the engine ends its worker when it is
# told to stop. Each notes in LOG when SIGTERM reached it.
WORKER = """
import signal, sys, time
def stop(*_):
    open(sys.argv[1], "a").write("worker\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
time.sleep(60)
"""
ENGINE = f"""
import signal, subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", {WORKER!r}, sys.argv[1]], stdout=subprocess.PIPE, text=True)
worker.stdout.readline()
def stop(*_):
    open(sys.argv[1], "a").write("engine\\n")
    worker.terminate()
    worker.wait(5)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print(worker.pid, flush=True)
time.sleep(60)
"""


def gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.1)
    return False


def test_a_watched_process_dies_with_a_parent_killed_by_sigkill() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        assert psutil.pid_exists(child)
        parent.kill()
        parent.wait(5)

        assert gone(child, GONE_WITHIN_S), "the watched child outlived its parent"
    finally:
        if psutil.pid_exists(child) and not gone(child, 0):
            psutil.Process(child).kill()


def test_the_watchdog_ends_only_what_is_still_watched() -> None:
    kept = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    ended = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = psutil.Process(ended.pid).create_time()
        lines = [f"watch {ended.pid} {started}", f"watch {kept.pid} 0", f"release {kept.pid}"]

        assert watchdog(lines) == 1
        assert ended.wait(5) is not None
        assert kept.poll() is None
    finally:
        kept.kill()
        kept.wait()


def test_a_reused_pid_is_never_killed() -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert watchdog([f"watch {other.pid} 12345.0"]) == 0, "a different start time means another process"
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_a_parent_is_told_to_stop_before_its_children(tmp_path: Path) -> None:
    log = tmp_path / "stopped.log"
    engine = subprocess.Popen([sys.executable, "-c", ENGINE, str(log)], stdout=subprocess.PIPE, text=True)
    assert engine.stdout is not None
    worker = int(engine.stdout.readline())
    try:
        # The worker is watched first: its order in the list must not decide.
        assert watchdog([f"watch {worker} 0", f"watch {engine.pid} 0"]) == 2
        assert engine.wait(5) == 0 and gone(worker, GONE_WITHIN_S)
        assert log.read_text().split() == ["engine", "worker"]  # the engine ended its own worker
    finally:
        for pid in (engine.pid, worker):
            if psutil.pid_exists(pid) and not gone(pid, 0):
                psutil.Process(pid).kill()



def test_the_socket_directory_goes_with_a_parent_killed_by_sigkill(tmp_path: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT_WITH_SOCKETS, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    sockets = Path(parent.stdout.readline().strip())
    assert sockets.is_dir() and any(sockets.iterdir())
    parent.kill()
    parent.wait(5)

    deadline = time.monotonic() + GONE_WITHIN_S
    while sockets.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not sockets.exists(), "the socket files outlived the process that made them"


def test_the_watchdog_removes_only_socket_directories(tmp_path: Path) -> None:
    ours, other = tmp_path / f"{SOCKETS_PREFIX}x1", tmp_path / "data"
    for directory in (ours, other):
        directory.mkdir()
        (directory / "file").write_text("kept?")

    assert watchdog([f"remove {ours}\n", f"remove {other}\n"]) == 0

    assert not ours.exists()
    assert (other / "file").read_text() == "kept?"
