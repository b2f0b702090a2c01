"""Remote servers are not all vLLM: each quirk of llama.cpp, Ollama and other OpenAI-compatible
servers, played by the fake (`FakeOpenAI(kind=...)`), against the real remote engine."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from bot.pipeline.answer import ReplyView
from engine.affinity import conversation, rendezvous, session_id
from engine.errors import PromptTooLongError
from engine.remote import DEFAULT_MAX_MODEL_LEN, RemoteEngine, RemoteOptions
from engine.servers import OLLAMA_DEFAULT_CONTEXT, TooLong, too_long
from engine.tokens import estimate_tokens
from engine.types import ChatMessage, ReplyChunk, Sampling
from tests.engine.fake_openai import TOKEN_COUNT, FakeOpenAI

HELLO = [ChatMessage("system", "be brief"), ChatMessage("user", "hello")]
SHORT = Sampling(max_tokens=16, seed=3)
FULL = "hello from the fake"


@pytest.fixture
async def servers() -> AsyncIterator[Callable[..., Any]]:
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
    options.setdefault("health_interval_s", 0.05)
    options.setdefault("start_wait_s", 5.0)
    async with RemoteEngine(RemoteOptions(tuple(f.url for f in fakes), **options)) as engine:
        yield engine


async def collect(engine: RemoteEngine, messages: list[ChatMessage] = HELLO) -> list[ReplyChunk]:
    return [chunk async for chunk in engine.stream(messages, SHORT)]


def shown(chunks: list[ReplyChunk]) -> str:
    """What the user ends up reading: the pipeline's own view of the chunks."""
    view = ReplyView("off", "en", None)
    for chunk in chunks:
        if not chunk.finished:
            view.add(chunk)
    return view.text


def first_for(fake: FakeOpenAI, fakes: list[FakeOpenAI]) -> str:
    """A conversation key whose preferred replica is `fake`."""
    return next(k for k in (f"telegram:{i}" for i in range(100))
                if rendezvous(session_id(k), [f.url for f in fakes])[0] == fake.url)


# --- a stream without finish_reason ------------------------------------------------------


@pytest.mark.parametrize("kind", ["ollama", "openai", "vllm"])
async def test_a_stream_ending_with_done_but_no_finish_reason_is_complete(
    servers: Callable[..., Any], kind: str
) -> None:
    fake = await servers(kind=kind, finish_reason=False)
    async with remote(fake) as engine:
        chunks = await collect(engine)
        [status] = await engine.replicas()

    assert shown(chunks) == FULL
    assert chunks[-1].finished and chunks[-1].finish_reason == "stop"
    assert len(fake.chats) == 1  # asked once: not retried, not shown three times
    assert status.healthy and engine.stats().last_error == ""


# --- llama.cpp ----------------------------------------------------------------------------


async def test_llama_cpp_is_recognised_and_its_n_ctx_is_the_context(servers: Callable[..., Any]) -> None:
    fake = await servers(kind="llama.cpp", n_ctx=2048)
    async with remote(fake) as engine:
        assert engine.max_model_len == 2048 != DEFAULT_MAX_MODEL_LEN
        assert engine._replicas[0].kind == "llama.cpp"


async def test_llama_cpp_counts_with_its_own_tokenize_body(servers: Callable[..., Any]) -> None:
    fake = await servers(kind="llama.cpp")
    async with remote(fake) as engine:
        counted = await engine.count_tokens(HELLO)
        await engine.count_tokens([*HELLO, ChatMessage("assistant", "hi"), ChatMessage("user", "again")])

    # One token per word of the rendered template: exact, not the byte estimate.
    rendered = ("<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n"
                "<|im_start|>assistant\n")
    assert counted == len(rendered.split())
    assert counted < estimate_tokens(HELLO)
    assert fake.tokenized == 2


@pytest.mark.parametrize(("kind", "tokens"), [("llama.cpp", 3000), ("openai", 3000), ("vllm", 3000)])
async def test_each_servers_too_long_refusal_is_recognised(
    servers: Callable[..., Any], kind: str, tokens: int
) -> None:
    fake = await servers(kind=kind, too_long=True, n_ctx=2048, max_model_len=2048)
    async with remote(fake) as engine:
        with pytest.raises(PromptTooLongError) as caught:
            await collect(engine)
        [status] = await engine.replicas()

    assert (caught.value.tokens, caught.value.limit) == (tokens, 2048)
    assert status.healthy  # a prompt too long says nothing about the server


def test_too_long_wordings() -> None:
    assert too_long(400, {"error": {"type": "exceed_context_size_error", "n_prompt_tokens": 3031,
                                    "n_ctx": 2048}}, "") == TooLong(3031, 2048)
    assert too_long(400, None, "The input (5000 tokens) is longer than the model's context length "
                               "(4096 tokens).") == TooLong(5000, 4096)
    assert too_long(400, None, "This model's maximum context length is 2048 tokens. However, your request "
                               "has 2049 input tokens.") == TooLong(2049, 2048)
    assert too_long(500, None, "maximum context length is 2048") is None


# --- continuing a cut reply -------------------------------------------------------------------


async def test_a_cut_reply_is_asked_again_and_replaced_on_a_server_that_does_not_continue(
    servers: Callable[..., Any],
) -> None:
    fakes = [await servers(name="a", cut_after=2),
             await servers(name="b", kind="llama.cpp", words=("a whole", " new reply"))]
    a, b = fakes
    async with remote(*fakes) as engine:
        with conversation(first_for(a, fakes)):
            chunks = await collect(engine)

    asked = b.chats[0].body
    assert asked["messages"][-1] == {"role": "user", "content": "hello"}  # no partial to continue
    assert "continue_final_message" not in asked
    assert [c.restart for c in chunks].count(True) == 1
    assert shown(chunks) == "a whole new reply"  # replaced, not "hello froma whole new reply"
    assert chunks[-1].reply_tokens == 2


async def test_a_cut_reply_is_continued_on_vllm(servers: Callable[..., Any]) -> None:
    fakes = [await servers(name="a", kind="llama.cpp", cut_after=2),
             await servers(name="b", words=(" replica", " b"))]
    a, b = fakes
    async with remote(*fakes) as engine:
        with conversation(first_for(a, fakes)):
            chunks = await collect(engine)

    assert b.chats[0].body["continue_final_message"] is True
    assert not any(c.restart for c in chunks)
    assert shown(chunks) == "hello from replica b"


# --- Ollama: context from /api/show, no tokenizer, a calibrated estimate ---------------------


async def test_ollama_is_recognised_and_its_num_ctx_is_the_context(servers: Callable[..., Any]) -> None:
    fake = await servers(kind="ollama", n_ctx=8192)
    async with remote(fake) as engine:
        assert engine._replicas[0].kind == "ollama"
        assert engine.max_model_len == 8192


def test_ollamas_default_context_applies_when_num_ctx_is_unset() -> None:
    from engine.servers import _ollama_context

    shown_model = {"parameters": "stop \"<|im_end|>\"", "model_info": {"llama.context_length": 131072}}
    assert _ollama_context(shown_model) == OLLAMA_DEFAULT_CONTEXT
    assert _ollama_context({"parameters": "num_ctx 65536", "model_info": {"x.context_length": 8192}}) == 8192


async def test_without_a_tokenizer_the_estimate_is_calibrated_on_the_servers_reports(
    servers: Callable[..., Any],
) -> None:
    fake = await servers(kind="ollama")
    later = [ChatMessage("system", "be brief"), ChatMessage("user", "hello again, how are you today?")]
    async with remote(fake) as engine:
        before = await engine.count_tokens(HELLO)
        await collect(engine)  # the server reports TOKEN_COUNT prompt tokens for HELLO
        after = await engine.count_tokens(later)

    assert before == estimate_tokens(HELLO)
    assert before / TOKEN_COUNT > 5  # the raw estimate: safe, and far off
    ratio = TOKEN_COUNT / estimate_tokens(HELLO)
    assert after == math.ceil(estimate_tokens(later) * ratio * 1.2) < estimate_tokens(later)
    assert fake.tokenized == 0  # Ollama has no tokenizer: never asked


# --- /status ----------------------------------------------------------------------------------


async def test_a_replica_that_is_up_shows_no_error(servers: Callable[..., Any]) -> None:
    up = await servers(name="up", models=("other",))
    down = await servers(name="down")
    async with remote(down, up, model="demo") as engine:
        await down.stop()
        await engine._probe_all()
        statuses = {s.url: s for s in await engine.replicas()}
        error = engine.stats().last_error

    assert statuses[up.url].healthy and statuses[up.url].last_error == ""
    assert "not checked yet" not in error and up.url not in error and down.url in error
