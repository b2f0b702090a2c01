"""The real vLLM engine on the demo models: streaming, cache, trimming, switching."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bot.app.builder import App, HearthBuilder
from bot.app.settings import Settings
from bot.messages import ConversationKey, IncomingMessage
from bot.moderation import AllowAllGate
from bot.pipeline import PromptLimits
from bot.store import SqliteStore
from engine.errors import ModelLoadError, PromptTooLongError
from engine.lifeline import SOCKETS_PREFIX
from engine.registry import ModelSpec
from engine.types import ChatMessage, ReplyChunk, Sampling
from engine.vllm_engine import VllmEngine
from tests.conftest import TODAY, SwitchTarget, make_settings
from tests.fakes import RecordingAdapter, message

pytestmark = pytest.mark.engine

ROOM = ConversationKey("telegram", "room")
SHORT = Sampling(max_tokens=12, ignore_eos=True, seed=1)

OPERATOR = "4242"


def socket_files(directory: Path) -> list[Path]:
    return [path for path in directory.iterdir() if stat.S_ISSOCK(path.stat().st_mode)]


async def collect(
    engine: VllmEngine, messages: list[ChatMessage], sampling: Sampling = SHORT
) -> list[ReplyChunk]:
    return [chunk async for chunk in engine.stream(messages, sampling)]


@pytest.fixture
def engine_settings(tmp_path: Path, data_dir: Path) -> Settings:
    return make_settings(data_dir, db_path=tmp_path / "hearth.sqlite3", max_reply_tokens=12,
                         admin_ids=f"telegram:{OPERATOR}")


@asynccontextmanager
async def app_on(settings: Settings, engine: VllmEngine) -> AsyncIterator[App]:
    """The app on the real engine; the gate lets everything through (random text may read as rude)."""
    async with SqliteStore(settings.database) as store:
        builder = HearthBuilder(settings).engine(engine).store(store).gate(AllowAllGate())
        builder.today(lambda: TODAY)
        async with builder.build() as app:
            yield app


@pytest.fixture
async def real_app(engine_settings: Settings, real_engine: VllmEngine) -> AsyncIterator[App]:
    async with app_on(engine_settings, real_engine) as app:
        yield app


async def test_a_reply_streams_and_reports_its_counts(real_engine: VllmEngine) -> None:
    chunks = await collect(real_engine, [ChatMessage("user", "hello 你好")])

    assert chunks[-1].finished and chunks[-1].reply_tokens == 12
    assert chunks[-1].prompt_tokens == await real_engine.count_tokens([ChatMessage("user", "hello 你好")])
    assert "".join(c.text for c in chunks)


async def test_channels_are_generated_concurrently(real_engine: VllmEngine) -> None:
    peak = 0

    async def one(n: int) -> int:
        nonlocal peak
        total = 0
        async for chunk in real_engine.stream([ChatMessage("user", f"channel {n}")], SHORT):
            peak = max(peak, real_engine.stats().running)
            total = chunk.reply_tokens
        return total

    assert await asyncio.gather(*(one(n) for n in range(8))) == [12] * 8
    assert peak >= 2, "requests from different channels must be in flight together"


async def test_closing_the_stream_aborts_the_request(real_engine: VllmEngine) -> None:
    stream = real_engine.stream([ChatMessage("user", "go on")], Sampling(max_tokens=1000, ignore_eos=True))
    async for _ in stream:
        break
    await stream.aclose()  # type: ignore[attr-defined]

    assert real_engine.stats().running == 0
    assert (await collect(real_engine, [ChatMessage("user", "next")]))[-1].finished


async def test_a_prompt_over_the_context_is_refused(real_engine: VllmEngine) -> None:
    huge = ChatMessage("user", "你好 hello " * 2000)
    with pytest.raises(PromptTooLongError):
        await collect(real_engine, [huge])


async def test_turn_two_reuses_the_prefix_cache(real_app: App) -> None:
    adapter = RecordingAdapter()
    await real_app.pipeline.handle(message("Tell me about the prefix cache " * 20, "1"), adapter)
    await real_app.pipeline.handle(message("and again", "2"), adapter)

    first, second = [m for m in await real_app.store.history(ROOM) if m.role == "assistant"]
    assert second.cached_tokens > 0, "vLLM reported no cached prompt tokens on turn 2"
    assert second.prompt_tokens > first.prompt_tokens
    assert real_app.engine.stats().cached_tokens > 0


async def test_history_survives_a_restart_and_is_used(
    engine_settings: Settings, real_engine: VllmEngine
) -> None:
    adapter = RecordingAdapter()
    async with app_on(engine_settings, real_engine) as app:
        for n in range(3):
            await app.pipeline.handle(message(f"turn {n} " * 30, str(n)), adapter)

    async with app_on(engine_settings, real_engine) as app:  # a new process would do just this
        assert [m.role for m in await app.store.history(ROOM)] == ["user", "assistant"] * 3
        await app.pipeline.handle(message("turn 3", "3"), adapter)
        replies = [m for m in await app.store.history(ROOM) if m.role == "assistant"]

    assert len(replies) == 4
    assert replies[3].prompt_tokens > replies[2].prompt_tokens, "the reloaded history was not sent"
    assert replies[3].cached_tokens >= 128, "the reloaded prompt differs from the one before the restart"


async def test_a_history_longer_than_the_context_is_trimmed_and_answered(real_app: App) -> None:
    adapter = RecordingAdapter()
    for n in range(40):  # well over the demo model's 2,048 tokens
        await real_app.store.add_message(ROOM, "user", f"old message {n} " + "词语 words " * 40)
        await real_app.store.add_message(ROOM, "assistant", f"old reply {n}")

    await real_app.pipeline.handle(message("what now?", "new"), adapter)

    reply = (await real_app.store.history(ROOM, 1000))[-1]
    assert reply.role == "assistant" and reply.reply_tokens > 0
    limits = PromptLimits(real_app.settings.history_messages, real_app.settings.max_reply_tokens)
    assert reply.prompt_tokens <= limits.budget(real_app.engine.max_model_len)
    history = await real_app.store.history(ROOM, 1000)
    assert history[0].text != "old message 0 " + "词语 words " * 40, "no context floor was set"


async def test_switching_to_awq_and_back(
    engine_settings: Settings, real_engine: VllmEngine, switch_target: SwitchTarget
) -> None:
    """To demo-awq where vLLM has its AWQ kernel here (`awq_runs_here`), else to other weights."""
    adapter = RecordingAdapter()
    boss = message("", "c", ROOM, author=OPERATOR)  # the model every chat gets: an operator's to switch
    target, quantization = switch_target.name, switch_target.quantization
    settings = engine_settings.model_copy(update={"models_file": switch_target.models_file})
    async with app_on(settings, real_engine) as real_app:
        await _switch_and_back(real_app, adapter, boss, target, quantization)


async def _switch_and_back(
    real_app: App, adapter: RecordingAdapter, boss: IncomingMessage, target: str, quantization: str
) -> None:
    try:
        assert await real_app.commands.run(boss, "model", target) == f"Now serving {target} ({quantization})."
        stats = real_app.engine.stats()
        assert (stats.model, stats.quantization, stats.state) == (target, quantization, "ready")
        await real_app.pipeline.handle(message("quantized hello", "q1"), adapter)
        assert (await real_app.store.history(ROOM))[-1].reply_tokens > 0
    finally:
        assert await real_app.commands.run(boss, "model", "demo") == "Now serving demo (none)."
    await real_app.pipeline.handle(message("back to bf16", "q2"), adapter)
    assert real_app.engine.stats().quantization == "none"
    assert (await real_app.store.history(ROOM))[-1].reply_tokens > 0


async def test_vllms_socket_files_are_in_a_directory_of_the_engines_own(real_engine: VllmEngine) -> None:
    sockets = Path(os.environ["VLLM_RPC_BASE_PATH"])

    assert sockets.name.startswith(SOCKETS_PREFIX)
    assert socket_files(sockets), "vLLM's sockets are elsewhere"


async def test_a_model_that_fails_to_load_leaves_the_old_one_serving(
    real_engine: VllmEngine, tmp_path: Path
) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    spec = ModelSpec("broken", str(broken))

    with pytest.raises(ModelLoadError) as caught:
        await real_engine.switch(spec)

    assert caught.value.model == "broken"
    assert real_engine.spec.name == "demo" and real_engine.stats().state == "ready"
    assert (await collect(real_engine, [ChatMessage("user", "still there?")]))[-1].finished


async def test_thinking_forced_out_of_the_real_model_never_reaches_the_platform(
    engine_settings: Settings, real_engine: VllmEngine
) -> None:
    """The demo model is made to think in Qwen3's tags (structured output); served as a
    reasoning model (the same weights: no reload), nothing between the tags is shown or stored."""
    pattern = r"<think>SECRET[a-z]{3,8}</think>\n\nhello [a-z]{3,8}"
    plain = real_engine.spec
    await real_engine.switch(dataclasses.replace(plain, name="demo-thinking", reasoning="qwen3"))
    adapter = RecordingAdapter()
    forced = Sampling(max_tokens=40, temperature=0.0, pattern=pattern)
    try:
        async with SqliteStore(engine_settings.database) as store:
            builder = HearthBuilder(engine_settings).engine(real_engine).store(store).gate(AllowAllGate())
            async with builder.sampling(forced).today(lambda: TODAY).build() as app:
                await app.pipeline.handle(message("think first", "t1"), adapter)
                [_, reply] = await app.store.history(ROOM)
    finally:
        await real_engine.switch(plain)

    shown = "\n".join(v for sent in adapter.sent for v in sent.texts)
    assert "SECRET" not in shown and "<think>" not in shown
    assert reply.text.startswith("hello ") and "SECRET" not in reply.text
    assert real_engine.spec == plain


async def test_a_model_that_recommends_no_sampling_is_served_with_hearths_defaults(
    real_engine: VllmEngine,
) -> None:
    from engine.sampling import FROM_HEARTH, HEARTH_DEFAULTS

    stats = real_engine.stats()
    assert stats.sampling == HEARTH_DEFAULTS and stats.sampling_origin == FROM_HEARTH


async def test_a_registry_recommendation_is_what_an_open_setting_gets(real_engine: VllmEngine) -> None:
    """Greedy through the registry alone: the same prompt twice gives the same reply."""
    greedy = dataclasses.replace(real_engine.spec, sampling={"temperature": 0.0})
    await real_engine.switch(greedy)  # same weights: takes effect at once
    try:
        prompt = [ChatMessage("user", "same again")]
        open_sampling = Sampling(max_tokens=12, ignore_eos=True)  # no seed, no temperature
        replies = [await collect(real_engine, prompt, open_sampling) for _ in range(2)]
        texts = ["".join(c.text for c in reply) for reply in replies]
        assert real_engine.stats().sampling["temperature"] == 0.0 and texts[0] == texts[1]
    finally:
        await real_engine.switch(dataclasses.replace(greedy, sampling={}))
