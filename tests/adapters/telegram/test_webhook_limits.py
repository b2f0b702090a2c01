"""The webhook server under a flood of idle connections: bounded, and still answering Telegram.

The real python-telegram-bot client against the fake Bot API; the flood is plain sockets
on 127.0.0.1 that connect and send nothing, or half a request line."""

from __future__ import annotations

import asyncio
import dataclasses
import resource
import time
from collections.abc import AsyncIterator, Iterator

import psutil
import pytest
from aiohttp import web
from pydantic import SecretStr

from adapters.telegram import TelegramConfig
from adapters.telegram.guard import ConnectionGuard
from adapters.telegram.webhook import MAX_CONNECTIONS
from bot.app.builder import App
from tests.adapters.telegram.fake_telegram import FakeTelegram
from tests.adapters.telegram.harness import ALICE, DM, adapter_for, serving
from tests.adapters.telegram.test_telegram import free_port, post_update, until_listening

IDLE_CONNECTIONS = 1100
SECRET = "hook-secret"


@pytest.fixture
def enough_descriptors() -> Iterator[None]:
    """Both ends of every connection live in this process: make room for them (the server
    keeps at most MAX_CONNECTIONS; the flood's own sockets stay open on the client side)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * IDLE_CONNECTIONS + 512
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"the hard limit on open files ({hard}) is below {wanted}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def webhook_config(config: TelegramConfig) -> TelegramConfig:
    return dataclasses.replace(config, webhook_url="https://hearth.example/tg/hook", webhook_port=free_port(),
                               webhook_secret=SecretStr(SECRET))


async def flood(port: int, count: int) -> list[asyncio.StreamWriter]:
    """`count` connections that never finish a request (every other one sends half a line)."""
    writers = []
    for n in range(count):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        if n % 2:
            writer.write(b"POST /tg/hook HTTP/1.1\r\nHost: x\r\n")
        writers.append(writer)
    return writers


async def test_1100_idle_connections_leave_a_legitimate_post_answered(
    app: App, webhook_config: TelegramConfig, fake: FakeTelegram, enough_descriptors: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = webhook_config.webhook_port
    async with serving(adapter_for(app, webhook_config), fake, ready="setWebhook"):
        await until_listening(port)
        writers = await flood(port, IDLE_CONNECTIONS)
        try:
            started = time.monotonic()
            status = await post_update(webhook_config, fake.make_update(DM, ALICE, "still here?"), SECRET)
            await fake.wait_for_reply(DM, "echo: still here?")
            answered_in = time.monotonic() - started
            held = server_side(port)
        finally:
            for writer in writers:
                writer.close()

    assert status == 200 and answered_in < 5.0
    assert held <= MAX_CONNECTIONS
    assert fake.webhook is not None and fake.webhook["max_connections"] == 40
    warnings = [r for r in caplog.records if r.name == "adapters.telegram.guard"]
    assert 1 <= len(warnings) <= 3, "a flood is a line or two in the log, not one per connection"


# --- the guard on its own, with short timeouts ------------------------------------------------


@pytest.fixture
async def guarded() -> AsyncIterator[tuple[ConnectionGuard, int]]:
    """A tiny aiohttp server behind a guard: 3 connections, 0.2 s to reach a request."""
    guard: ConnectionGuard | None = None

    async def hello(request: web.Request) -> web.Response:
        assert guard is not None
        guard.started(request.transport)
        return web.Response(text="hello")

    server = web.Server(hello)
    guard = ConnectionGuard(server, cap=3, header_s=0.2)
    listening = await asyncio.get_running_loop().create_server(guard.protocol, "127.0.0.1", 0)
    try:
        yield guard, listening.sockets[0].getsockname()[1]
    finally:
        listening.close()
        await server.shutdown(0.1)


async def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    guarded: tuple[ConnectionGuard, int],
) -> None:
    guard, port = guarded
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    assert await asyncio.wait_for(reader.read(), 2.0) == b"", "closed by the server"
    assert guard.open == 0
    writer.close()


async def test_over_the_cap_the_oldest_idle_connection_makes_room_for_a_request(
    guarded: tuple[ConnectionGuard, int],
) -> None:
    guard, port = guarded
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")

    answer = await asyncio.wait_for(reader.read(), 2.0)

    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"hello")
    assert await asyncio.wait_for(idle[0][0].read(), 2.0) == b"", "the oldest idle one was closed"
    assert guard.open <= 3
    for _, w in [*idle, (reader, writer)]:
        w.close()


def server_side(port: int) -> int:
    """The connections the webhook server holds open now (those accepted on `port`)."""
    return sum(1 for c in psutil.Process().net_connections("tcp")
               if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED)
