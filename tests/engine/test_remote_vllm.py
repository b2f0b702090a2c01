"""The remote engine against real vLLM OpenAI servers on the demo model.

One server is shared by the whole session; the failover test starts a second real
one and kills it mid-reply (through a relay that fixes the point of death,
tests/engine/cutting_relay.py). Both are ended by pid (their process groups) afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bench.servers import VllmServer
from engine.affinity import conversation, rendezvous, session_id
from engine.remote import RemoteEngine, RemoteOptions
from engine.tokens import LocalTokenizer
from engine.types import ChatMessage, ReplyChunk, Sampling
from tests.engine.cutting_relay import CuttingRelay
from tests.engine.fake_openai import FakeOpenAI

pytestmark = pytest.mark.engine

FIXED = Sampling(max_tokens=8, ignore_eos=True, seed=1)
LONG = Sampling(max_tokens=300, ignore_eos=True, seed=1)
# Long enough for whole 128-token blocks (vLLM's prefix-cache block on CPU) to be cached.
SYSTEM = "You are Hearth, a friendly helper in a group chat. 你是一个友好的助手。 " * 30
KEYS = [f"discord:channel{i}" for i in range(32)]


@pytest.fixture(scope="session")
async def vllm_server(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[VllmServer]:
    """A real vLLM OpenAI server on the demo model, shared by every test of the session."""
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    async with VllmServer(str(data_dir / "models" / "demo"), "demo", log) as server:
        yield server


@asynccontextmanager
async def remote(*urls: str, **options: Any) -> AsyncIterator[RemoteEngine]:
    options.setdefault("health_interval_s", 0.5)
    async with RemoteEngine(RemoteOptions(urls, **options)) as engine:
        yield engine


async def collect(engine: RemoteEngine, messages: list[ChatMessage], sampling: Sampling = FIXED,
                  on_chunk: Callable[[ReplyChunk], None] | None = None) -> list[ReplyChunk]:
    chunks = []
    async for chunk in engine.stream(messages, sampling):
        chunks.append(chunk)
        if on_chunk is not None:
            on_chunk(chunk)
    return chunks


def preferring(url: str, urls: list[str]) -> str:
    return next(k for k in KEYS if rendezvous(session_id(k), urls)[0] == url)


async def test_a_reply_streams_from_vllm_with_exact_counts(vllm_server: VllmServer, data_dir: Path) -> None:
    messages = [ChatMessage("system", "be brief"), ChatMessage("user", "hello 你好")]
    async with remote(vllm_server.url) as engine:
        counted = await engine.count_tokens(messages)
        chunks = await collect(engine, messages)

    assert engine.spec.name == "demo" and engine.max_model_len == 2048
    assert counted == LocalTokenizer.load(data_dir / "models" / "demo").count(messages)
    final = chunks[-1]
    assert final.finished and final.finish_reason == "length"
    assert (final.prompt_tokens, final.reply_tokens) == (counted, FIXED.max_tokens)
    assert "".join(c.text for c in chunks[:-1])


async def test_the_next_turn_is_served_from_the_prefix_cache(vllm_server: VllmServer) -> None:
    first = [ChatMessage("system", SYSTEM), ChatMessage("user", "What is a prefix cache?")]
    async with remote(vllm_server.url) as engine:
        [before] = await engine.replicas()
        reply = "".join(c.text for c in await collect(engine, first))
        second = [*first, ChatMessage("assistant", reply), ChatMessage("user", "And a block?")]
        final = (await collect(engine, second))[-1]
        [after] = await engine.replicas()

    assert final.cached_tokens >= 256, "the system prompt's whole blocks should be cached"
    assert before.metrics is not None and after.metrics is not None
    assert after.metrics.prefix_cache_hits - before.metrics.prefix_cache_hits >= final.cached_tokens
    assert after.healthy and after.models == ("demo",) and after.replies == 2


async def test_served_models_are_what_vllm_lists(vllm_server: VllmServer) -> None:
    async with remote(vllm_server.url) as engine:
        assert await engine.served_models() == ["demo"]


async def test_a_conversation_fails_over_from_a_dead_replica_to_vllm(vllm_server: VllmServer) -> None:
    fake = await FakeOpenAI().start()
    urls = [vllm_server.url.rstrip("/"), fake.url]
    try:
        async with remote(*urls) as engine:
            on_fake, on_vllm = preferring(fake.url, urls), preferring(urls[0], urls)
            with conversation(on_fake):
                await collect(engine, [ChatMessage("user", "hi")])
            with conversation(on_vllm):
                await collect(engine, [ChatMessage("user", "hi")])
            assert len(fake.chats) == 1, "each conversation on its own replica"

            await fake.stop()
            with conversation(on_fake):
                final = (await collect(engine, [ChatMessage("user", "hi again")]))[-1]
    finally:
        await fake.stop()

    assert final.finished and final.reply_tokens == FIXED.max_tokens
    assert len(fake.chats) == 1 and fake.unexpected == []


async def test_a_real_replica_killed_mid_reply_is_continued_by_the_other(
    vllm_server: VllmServer, data_dir: Path, tmp_path: Path
) -> None:
    second = VllmServer(str(data_dir / "models" / "demo"), "demo", tmp_path / "second.log")
    async with second:
        # The relay kills the second server after its fifth streamed event and forwards
        # nothing after it: killed from the client's side, a fast server had sometimes
        # sent its whole reply before the kill, and nothing failed over.
        relay = CuttingRelay(second.port, cut_after=5, on_cut=second.kill)
        async with relay, remote(vllm_server.url, relay.url, health_interval_s=60) as engine:
            with conversation(preferring(relay.url, [vllm_server.url, relay.url])):
                story = [ChatMessage("user", "tell me a story")]
                chunks = await collect(engine, story, LONG)
            statuses = await engine.replicas()

    final = chunks[-1]
    assert relay.cut, "the second replica died mid-reply"
    assert final.finished and final.finish_reason == "length"
    assert final.reply_tokens >= LONG.max_tokens - 5, "the first replica went on where the second stopped"
    assert [s.healthy for s in statuses] == [True, False] and statuses[0].replies == 1
