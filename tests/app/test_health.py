"""Health and readiness on the metrics port (`bot.app.health`), the build info, and the
instance lease (`bot.app.lease`), in process on the fake engine."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiohttp
import pytest

from bot.app.builder import App, HearthBuilder
from bot.app.health import PartState, Readiness, StoreProbe, platform_probe
from bot.app.lease import InstanceLease
from bot.app.metrics_server import MetricsServer
from bot.app.settings import Settings
from bot.errors import ConfigError, StoreUnavailableError
from bot.moderation import AllowAllGate
from bot.store import MemoryStore
from bot.store.faults import StoreHealth
from engine.fake import FakeEngine
from tests.conftest import make_settings, open_app


async def get(url: str) -> tuple[int, object]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        body = await response.json() if response.content_type == "application/json" else await response.text()
        return response.status, body


def base(metrics_url: str | None) -> str:
    assert metrics_url is not None
    return metrics_url.removesuffix("/metrics")


async def test_readyz_names_each_part_and_is_ready_once_serving(tmp_path: Path, engine: FakeEngine) -> None:
    async with open_app(make_settings(tmp_path, metrics_port=0), engine) as app:
        url = base(app.metrics_url)
        alive_status, alive = await get(url + "/healthz")
        starting_status, starting = await get(url + "/readyz")
        app.readiness.forget("platforms")
        app.readiness.phase = "serving"
        serving_status, serving = await get(url + "/readyz")

    assert alive_status == 200 and isinstance(alive, dict)
    assert alive["alive"] is True and alive["phase"] == "starting"
    assert starting_status == 503 and isinstance(starting, dict)
    assert starting["parts"] == {
        "engine": {"ok": True, "detail": "demo: ready"},
        "platforms": {"ok": False, "detail": "not started"},
        "store": {"ok": True, "detail": "writable"},
    }
    assert serving_status == 200 and serving == {"ready": True, "phase": "serving", "parts": {
        "engine": {"ok": True, "detail": "demo: ready"}, "store": {"ok": True, "detail": "writable"}}}


async def test_the_build_info_is_served_with_the_metrics(tmp_path: Path, engine: FakeEngine) -> None:
    async with open_app(make_settings(tmp_path, metrics_port=0), engine) as app:
        _, text = await get(str(app.metrics_url))

    assert isinstance(text, str)
    [line] = [line for line in text.splitlines() if line.startswith("hearth_build_info{")]
    assert 'version="0.1.0"' in line and 'python="' in line and 'vllm_build="' in line
    assert line.endswith(" 1.0")


async def test_a_monitor_answers_before_there_is_an_app() -> None:
    async with MetricsServer(None, "127.0.0.1", 0) as server:
        server.readiness.set("store", False, "checking the database")
        url = server.url.removesuffix("/metrics")
        alive, _ = await get(url + "/healthz")
        status, body = await get(url + "/readyz")
        _, metrics = await get(server.url)

    assert alive == 200 and status == 503 and isinstance(body, dict)
    assert body["parts"]["store"] == {"ok": False, "detail": "checking the database"}
    assert isinstance(metrics, str) and "hearth_build_info{" in metrics


async def test_a_taken_port_is_one_line_naming_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as caught:
            await MetricsServer(None, "127.0.0.1", port).start()

    [problem] = caught.value.problems
    assert problem.startswith(f"HEARTH_METRICS_PORT: cannot listen on 127.0.0.1:{port}")


class Unwritable:
    async def get_setting(self, name: str) -> str | None:
        return None

    async def set_setting(self, name: str, value: str) -> None:
        raise StoreUnavailableError("set setting", "disk I/O error")


async def test_the_store_probe_writes_and_says_when_it_cannot() -> None:
    store = MemoryStore()
    await store.open()
    assert await StoreProbe(store, store.health, "a")() == PartState(True, "writable")
    assert (await store.get_setting("health_probe:a")) is not None
    failing = await StoreProbe(Unwritable(), StoreHealth(), "a")()
    assert not failing.ok and "disk I/O error" in failing.detail


class SlowPlatform:
    def __init__(self) -> None:
        self.ready = asyncio.Event()

    async def wait_until_ready(self) -> None:
        await self.ready.wait()


async def test_a_platform_is_ready_once_it_says_it_is_connected() -> None:
    platform = SlowPlatform()
    probe = platform_probe(platform)
    assert await probe() == PartState(False, "connecting")
    platform.ready.set()
    assert await probe() == PartState(True, "connected")
    assert await platform_probe(object())() == PartState(True, "running")


async def test_a_probe_that_hangs_is_not_ready() -> None:
    readiness = Readiness()

    async def hangs() -> PartState:
        await asyncio.sleep(60)
        raise AssertionError("unreachable")

    readiness.watch("engine", hangs)
    readiness.phase = "serving"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("bot.app.health.PROBE_TIMEOUT_S", 0.05)
        ready, body = await readiness.report()
    assert not ready and isinstance(body["parts"], dict)
    assert body["parts"]["engine"]["ok"] is False


# One process per instance name on a database.


def hearth(settings: Settings, engine: FakeEngine) -> App:
    """An app that opens the database itself (and so claims the instance's lease)."""
    return HearthBuilder(settings).engine(engine).gate(AllowAllGate()).build()


async def test_a_second_app_with_the_same_instance_is_refused(tmp_path: Path, engine: FakeEngine) -> None:
    settings = make_settings(tmp_path)
    async with hearth(settings, engine):
        with pytest.raises(ConfigError) as caught:
            async with hearth(settings, engine):
                pass
        async with hearth(make_settings(tmp_path, instance_name="second"), engine):
            pass  # another name on the same database is another instance
    async with hearth(settings, engine):
        pass  # released when the first closed

    [problem] = caught.value.problems
    assert problem.startswith(
        "HEARTH_INSTANCE_NAME: another Hearth runs as instance 'hearth' on this database (process ")
    assert "stop it, or give this one another HEARTH_INSTANCE_NAME" in problem


async def test_a_holder_whose_lease_was_taken_over_knows_it() -> None:
    store = MemoryStore()
    await store.open()
    slow = InstanceLease(store, "hearth", ttl_s=0.05, renew_s=0.2)
    await slow.claim()
    await asyncio.sleep(0.1)  # its renewals did not come: expired
    await InstanceLease(store, "hearth").claim()

    await asyncio.wait_for(slow.keep(), 5)

    assert slow.lost.is_set()
