"""The remote engine against fake OpenAI-compatible servers: streaming, affinity, failover."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from engine.affinity import conversation, rendezvous, session_id
from engine.errors import EngineUnavailableError, ModelLoadError, PromptTooLongError
from engine.registry import ModelSpec
from engine.remote import RemoteEngine, RemoteOptions
from engine.replica import normalise_url
from engine.tokens import LocalTokenizer, estimate_tokens
from engine.types import ChatMessage, ReplyChunk, Sampling
from tests.engine.fake_openai import TOKEN_COUNT, FakeOpenAI

HELLO = [ChatMessage("system", "be brief"), ChatMessage("user", "hello")]
SHORT = Sampling(max_tokens=16, seed=3)
FULL = "hello from the fake"
FAST_HEALTH_S = 0.05
KEYS = [f"telegram:room{i}" for i in range(24)]


@pytest.fixture
async def servers() -> AsyncIterator[Callable[..., Any]]:
    """Starts fakes on demand; stops them all and checks none saw an unexpected route."""
    started: list[FakeOpenAI] = []

    async def start(**fields: Any) -> FakeOpenAI:
        started.append(await FakeOpenAI(**fields).start())
        return started[-1]

    yield start
    for fake in started:
        await fake.stop()
    assert [f.unexpected for f in started] == [[] for _ in started]


@asynccontextmanager
async def remote(*fakes: FakeOpenAI, **options: Any) -> AsyncIterator[RemoteEngine]:
    options.setdefault("health_interval_s", FAST_HEALTH_S)
    options.setdefault("start_wait_s", 5.0)
    async with RemoteEngine(RemoteOptions(tuple(f.url for f in fakes), **options)) as engine:
        yield engine


async def collect(engine: RemoteEngine, messages: list[ChatMessage] = HELLO) -> list[ReplyChunk]:
    return [chunk async for chunk in engine.stream(messages, SHORT)]


def text_of(chunks: list[ReplyChunk]) -> str:
    return "".join(c.text for c in chunks)


def preferring(fake: FakeOpenAI, fakes: list[FakeOpenAI]) -> str:
    """A conversation key whose first choice is `fake`."""
    urls = [f.url for f in fakes]
    return next(k for k in KEYS if rendezvous(session_id(k), urls)[0] == fake.url)


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Wait for what the engine's background health checks change."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 (the engine has no event to wait on)
            await asyncio.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- streaming ---------------------------------------------------------------------------


async def test_a_reply_streams_with_the_servers_counts(servers: Callable[..., Any]) -> None:
    fake = await servers()
    async with remote(fake) as engine:
        chunks = await collect(engine)

    assert text_of(chunks) == FULL
    final = chunks[-1]
    assert final.finished and final.finish_reason == "length"
    assert (final.prompt_tokens, final.cached_tokens, final.reply_tokens) == (TOKEN_COUNT, 3, 4)
    assert engine.stats().replies == 1


async def test_the_conversation_is_sent_hashed_as_header_and_user(servers: Callable[..., Any]) -> None:
    fake = await servers()
    async with remote(fake) as engine:
        with conversation("telegram:room42"):
            await collect(engine)

    [seen] = fake.chats
    expected = session_id("telegram:room42")
    assert seen.headers["x-session-id"] == expected and seen.body["user"] == expected
    assert "room42" not in json.dumps(seen.body) + json.dumps(seen.headers)


async def test_without_a_conversation_no_session_is_sent(servers: Callable[..., Any]) -> None:
    fake = await servers()
    async with remote(fake) as engine:
        await collect(engine)

    assert "user" not in fake.chats[0].body and "x-session-id" not in fake.chats[0].headers


async def test_sampling_and_the_api_key_reach_the_server(servers: Callable[..., Any]) -> None:
    fake = await servers(api_key="sesame")
    sampling = Sampling(temperature=0.2, top_p=0.5, repetition_penalty=1.2, max_tokens=3,
                        ignore_eos=True, seed=9)
    async with remote(fake, api_key="sesame") as engine:
        chunks = [c async for c in engine.stream(HELLO, sampling)]

    body = fake.chats[0].body
    assert fake.chats[0].headers["authorization"] == "Bearer sesame"
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (0.2, 0.5, 3, 9)
    assert body["repetition_penalty"] == 1.2 and body["ignore_eos"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert text_of(chunks) == "hello from the"


async def test_unset_sampling_is_left_to_the_server(servers: Callable[..., Any]) -> None:
    fake = await servers()
    async with remote(fake) as engine:
        [_ async for _ in engine.stream(HELLO, Sampling())]

    body = fake.chats[0].body
    assert not {"temperature", "top_p", "repetition_penalty", "seed", "structured_outputs"} & set(body)


async def test_a_pattern_is_sent_as_structured_output(servers: Callable[..., Any]) -> None:
    fake = await servers()
    async with remote(fake) as engine:
        [_ async for _ in engine.stream(HELLO, Sampling(pattern="(yes|no)"))]

    assert fake.chats[0].body["structured_outputs"] == {"regex": "(yes|no)"}


async def test_thinking_the_server_split_off_comes_as_reasoning(servers: Callable[..., Any]) -> None:
    fake = await servers(reasoning=("let me", " think"))
    async with remote(fake) as engine:
        chunks = await collect(engine)

    assert "".join(c.reasoning for c in chunks) == "let me think"
    assert text_of(chunks) == FULL and chunks[-1].reply_tokens == 4


async def test_many_replies_at_once_never_wait_for_a_connection(servers: Callable[..., Any]) -> None:
    fake = await servers(chunk_delay=0.3)  # each reply takes 1.2 s; a pool wait would time out at 1 s
    async with remote(fake, timeout_s=1.0) as engine:
        replies = await asyncio.gather(*(collect(engine) for _ in range(150)))

    assert all(text_of(r) == FULL for r in replies)


async def test_closing_the_stream_closes_the_request(servers: Callable[..., Any]) -> None:
    fake = await servers(chunk_delay=0.2)
    async with remote(fake) as engine:
        async with aclosing(engine.stream(HELLO, SHORT)) as chunks:
            first = await anext(chunks)
        await until(lambda: fake.disconnected == 1)

    assert first.text == "hello" and engine.stats().running == 0


# --- affinity ----------------------------------------------------------------------------


async def test_each_conversation_stays_on_one_replica(servers: Callable[..., Any]) -> None:
    fakes = [await servers(name="a"), await servers(name="b")]
    async with remote(*fakes) as engine:
        for _turn in range(3):
            for key in KEYS:
                with conversation(key):
                    await collect(engine)

    where = [{s.body["user"] for s in f.chats} for f in fakes]
    assert not where[0] & where[1], "a conversation was answered by both replicas"
    assert all(len(w) >= 4 for w in where), "conversations should spread over both replicas"
    assert all(len(f.chats) == 3 * len(w) for f, w in zip(fakes, where, strict=True))


async def test_round_robin_alternates_replicas(servers: Callable[..., Any]) -> None:
    fakes = [await servers(), await servers()]
    async with remote(*fakes, routing="round-robin") as engine:
        with conversation("telegram:room"):
            for _ in range(4):
                await collect(engine)

    assert [len(f.chats) for f in fakes] == [2, 2]


def test_rendezvous_moves_only_the_removed_nodes_sessions() -> None:
    nodes = ["http://a/v1", "http://b/v1", "http://c/v1"]
    sessions = [session_id(k) for k in KEYS]
    before = {s: rendezvous(s, nodes)[0] for s in sessions}
    after = {s: rendezvous(s, nodes[1:])[0] for s in sessions}

    moved = {s for s in sessions if before[s] != after[s]}
    assert moved == {s for s in sessions if before[s] == "http://a/v1"}
    assert all(after[s] == rendezvous(s, nodes)[1] for s in moved)


# --- failover ----------------------------------------------------------------------------


async def test_a_down_replica_fails_over_and_gets_its_conversations_back(
    servers: Callable[..., Any],
) -> None:
    fakes = [await servers(name="a"), await servers(name="b")]
    a, b = fakes
    key = preferring(a, fakes)
    async with remote(*fakes) as engine:
        await a.stop()
        with conversation(key):
            chunks = await collect(engine)
        assert text_of(chunks) == FULL and len(b.chats) == 1
        assert not (await engine.replicas())[0].healthy

        await a.start()  # the same port: the health check sees it answer again
        await until(lambda: engine.stats().state == "ready" and len(b.chats) == 1)
        await until(lambda: all(r.healthy for r in engine._replicas))
        with conversation(key):
            await collect(engine)

    assert len(a.chats) == 1 and len(b.chats) == 1


async def test_a_reply_cut_mid_stream_is_continued_by_the_next_replica(
    servers: Callable[..., Any],
) -> None:
    fakes = [await servers(name="a", cut_after=2), await servers(name="b", words=(" replica", " b"))]
    a, b = fakes
    async with remote(*fakes) as engine:
        with conversation(preferring(a, fakes)):
            chunks = await collect(engine)

    assert text_of(chunks) == "hello from replica b"
    continued = b.chats[0].body
    assert continued["messages"][-1] == {"role": "assistant", "content": "hello from"}
    assert continued["continue_final_message"] is True and continued["add_generation_prompt"] is False
    assert continued["max_tokens"] == SHORT.max_tokens - 2
    assert chunks[-1].reply_tokens == 4


async def test_a_server_error_is_retried_on_the_next_replica(servers: Callable[..., Any]) -> None:
    fakes = [await servers(fail_status=500), await servers()]
    async with remote(*fakes) as engine:
        with conversation(preferring(fakes[0], fakes)):
            chunks = await collect(engine)

    assert text_of(chunks) == FULL
    assert [len(f.chats) for f in fakes] == [1, 1]


async def test_when_no_replica_answers_the_attempts_are_bounded(servers: Callable[..., Any]) -> None:
    fakes = [await servers(fail_status=503), await servers(fail_status=502)]
    async with remote(*fakes, attempts=3, health_interval_s=60) as engine:
        with pytest.raises(EngineUnavailableError, match="no replica answered"):
            await collect(engine)

        assert sum(len(f.chats) for f in fakes) == 3
        assert engine.stats().state == "failed"


async def test_a_prompt_too_long_is_not_retried(servers: Callable[..., Any]) -> None:
    message = ("This model's maximum context length is 2048 tokens. However, your prompt contains "
               "at least 2049 input tokens, which exceeds this limit.")
    fakes = [await servers(fail_status=400, fail_message=message), await servers(fail_status=400)]
    async with remote(*fakes) as engine:
        with pytest.raises(PromptTooLongError) as caught:
            await collect(engine)

    assert (caught.value.tokens, caught.value.limit) == (2049, 2048)
    assert sum(len(f.chats) for f in fakes) == 1


async def test_losing_and_regaining_every_replica_is_reported(servers: Callable[..., Any]) -> None:
    fake = await servers()
    events: list[str] = []
    options = RemoteOptions((fake.url,), health_interval_s=FAST_HEALTH_S)
    async with RemoteEngine(options, lambda state, detail: events.append(state)) as engine:
        await fake.stop()
        await until(lambda: engine.stats().state == "failed")
        await fake.start()
        await until(lambda: engine.stats().state == "ready")

    assert events == ["unavailable", "ready"]


# --- counting tokens ---------------------------------------------------------------------


async def test_tokens_are_counted_by_the_server_once_per_prompt(servers: Callable[..., Any]) -> None:
    fake = await servers()
    async with remote(fake) as engine:
        assert await engine.count_tokens(HELLO) == TOKEN_COUNT
        await collect(engine)

    assert fake.tokenized == 1


async def test_a_burst_of_channels_counted_before_any_streams_is_counted_once_each(
    servers: Callable[..., Any]
) -> None:
    fake = await servers()
    prompts = [[ChatMessage("system", "be brief"), ChatMessage("user", f"hello from channel {n}")]
               for n in range(300)]  # more than the 256 counts a fixed cache kept
    async with remote(fake) as engine:
        for prompt in prompts:
            await engine.count_tokens(prompt)
        for prompt in prompts:
            await collect(engine, prompt)

    assert fake.tokenized == len(prompts)


async def test_without_tokenize_the_local_tokenizer_counts(
    servers: Callable[..., Any], data_dir: Path
) -> None:
    fake = await servers(tokenize=False)
    directory = data_dir / "models" / "demo"
    async with remote(fake, tokenizer=directory) as engine:
        counted = await engine.count_tokens(HELLO)

    assert counted == LocalTokenizer.load(directory).count(HELLO)


async def test_with_no_way_to_count_an_estimate_is_used(servers: Callable[..., Any], tmp_path: Path) -> None:
    fake = await servers(tokenize=False)
    async with remote(fake, tokenizer=tmp_path) as engine:  # no tokenizer there: a warning, no crash
        counted = await engine.count_tokens(HELLO)
        chunks = await collect(engine)

    assert counted == estimate_tokens(HELLO) and text_of(chunks) == FULL


def test_the_estimate_over_counts_english_and_chinese(data_dir: Path) -> None:
    tokenizer = LocalTokenizer.load(data_dir / "models" / "demo")
    for text in ("The quick brown fox jumps over the lazy dog. " * 20, "今天天气很好，适合去公园散步。" * 20):
        messages = [ChatMessage("user", text)]
        assert estimate_tokens(messages) >= tokenizer.count(messages)


# --- starting, models, status --------------------------------------------------------------


async def test_start_takes_the_first_served_model_and_its_context(servers: Callable[..., Any]) -> None:
    fake = await servers(models=("qwen", "demo"), max_model_len=8192)
    async with remote(fake, max_model_len=4096) as engine:
        assert engine.spec.name == "qwen" and engine.max_model_len == 4096
        assert await engine.served_models() == ["qwen", "demo"]
        await engine.switch(ModelSpec("demo", "x"))
        assert engine.spec.name == "demo" and engine.stats().model == "demo"
        with pytest.raises(ModelLoadError, match="not served"):
            await engine.switch(ModelSpec("llama", "x"))
        assert engine.spec.name == "demo"


async def test_a_model_no_replica_serves_fails_the_start(servers: Callable[..., Any]) -> None:
    fake = await servers()
    with pytest.raises(ModelLoadError, match=r"served: demo"):
        async with remote(fake, model="qwen"):
            pass


async def test_no_replica_answering_fails_the_start_in_time() -> None:
    options = RemoteOptions((f"http://127.0.0.1:{free_port()}/v1",), start_wait_s=0.5)
    with pytest.raises(ModelLoadError, match="no replica answered"):
        async with asyncio.timeout(5):
            await RemoteEngine(options).start()


async def test_status_shows_health_and_the_servers_cache(servers: Callable[..., Any]) -> None:
    fakes = [await servers(), await servers(metrics=False)]
    async with remote(*fakes) as engine:
        await fakes[0].stop()  # stopped: down, with no metrics
        with conversation(preferring(fakes[0], fakes)):
            await collect(engine)
        await fakes[0].start()
        await until(lambda: all(r.healthy for r in engine._replicas))
        with conversation(preferring(fakes[0], fakes)):
            await collect(engine)
        first, second = await engine.replicas()

    assert first.healthy and first.replies == 1 and first.models == ("demo",)
    assert first.metrics is not None
    assert (first.metrics.running, first.metrics.waiting, first.metrics.hit_rate) == (1, 2, 0.75)
    assert second.replies == 1 and second.metrics is None


def test_urls_are_normalised_to_the_openai_base() -> None:
    assert normalise_url("http://gpu-a:8000") == "http://gpu-a:8000/v1"
    assert normalise_url(" http://gpu-a:8000/v1/ ") == "http://gpu-a:8000/v1"
    assert normalise_url("https://ollama.lan/v1") == "https://ollama.lan/v1"
    with pytest.raises(ValueError):
        normalise_url("gpu-a:8000")
