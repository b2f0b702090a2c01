"""`hearth run` starts the adapters whose tokens are set, else the terminal chat."""

from __future__ import annotations

import io
from pathlib import Path

from adapters.discord import DiscordAdapter
from adapters.telegram import TelegramAdapter
from adapters.terminal import TerminalAdapter
from bot.app.platforms import build_platforms
from engine.fake import FakeEngine
from tests.conftest import make_settings, open_app


async def platforms_for(tmp_path: Path, engine: FakeEngine, **tokens: str) -> list[type]:
    async with open_app(make_settings(tmp_path, **tokens), engine) as app:
        return [type(p) for p in build_platforms(app, io.StringIO(), io.StringIO())]


async def test_no_token_means_the_terminal_chat(engine: FakeEngine, tmp_path: Path) -> None:
    assert await platforms_for(tmp_path, engine) == [TerminalAdapter]


async def test_each_platform_token_starts_its_adapter(engine: FakeEngine, tmp_path: Path) -> None:
    assert await platforms_for(tmp_path / "d", engine, discord_token="d") == [DiscordAdapter]
    assert await platforms_for(tmp_path / "t", engine, telegram_token="1:t") == [TelegramAdapter]
    both = await platforms_for(tmp_path / "b", engine, discord_token="d", telegram_token="1:t")
    assert both == [DiscordAdapter, TelegramAdapter]


def test_the_hard_stop_kills_every_process_this_one_started_and_theirs() -> None:
    """An engine core still loading is unknown to the lifeline: the hard stop finds it by parentage."""
    import subprocess
    import sys

    import psutil

    from bot.app.runner import _kill_descendants

    script = ("import subprocess, sys, time; "
              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", script])
    try:
        parent = psutil.Process(child.pid)
        for _ in range(100):
            if parent.children():
                break
            psutil.wait_procs([], timeout=0.05)
        grandchildren = parent.children()
        assert grandchildren, "the grandchild started"
        _kill_descendants(child.pid)  # as Hearth does for itself; here, for a stand-in only
        _gone, alive = psutil.wait_procs(grandchildren, timeout=5)
        assert [p for p in alive if p.status() != psutil.STATUS_ZOMBIE] == []  # dead, not yet reaped
    finally:
        child.kill()
        child.wait()
