"""The streamed reply's parts that run once per token: the view that gathers the chunks,
and the first-token timer around the engine's stream."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from pathlib import Path

from bench.harness import fixed_length
from bot.metrics import Metrics, TimedEngine
from bot.pipeline.answer import ReplyView
from engine.fake import FakeEngine
from engine.registry import Registry
from engine.types import ChatMessage, ReplyChunk, Sampling
from tests.conftest import make_settings


def test_the_view_gathers_every_chunk_in_order_and_a_restart_starts_it_over() -> None:
    view = ReplyView("shown", "en", None)
    pieces = [f"w{n} " for n in range(3000)]
    for piece in pieces:
        view.add(ReplyChunk(piece))
    assert view.text == "".join(pieces)
    view.add(ReplyChunk("", reasoning="hmm"))
    view.add(ReplyChunk(" more"))
    assert view.text == "".join(pieces) + " more", "read twice, the pieces are not lost"
    assert view.thinking == "hmm"
    view.add(ReplyChunk("again", restart=True))
    assert (view.text, view.thinking) == ("again", "")


def test_an_empty_reply_reads_as_the_notice_for_it() -> None:
    view = ReplyView("off", "en", None)
    view.add(ReplyChunk("  "))
    text, shows = view.final(ReplyChunk("", finished=True, finish_reason="stop"))
    assert text == shows and text.strip() and text != "  "


class _Counting(FakeEngine):
    """A fake engine whose streams say when they were closed."""

    closed = 0

    async def stream(
        self, messages: Sequence[ChatMessage], sampling: Sampling
    ) -> AsyncGenerator[ReplyChunk, None]:
        try:
            async for chunk in super().stream(messages, sampling):
                yield chunk
        finally:
            type(self).closed += 1


async def test_the_first_token_is_timed_once_and_closing_reaches_the_engine(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    engine = _Counting(Registry.load(settings.models_file).lookup(settings.model), lambda _m: ["a", "b", "c"])
    await engine.start()
    metrics = Metrics()
    timed = TimedEngine(engine, metrics)
    got = [chunk.text async for chunk in timed.stream([ChatMessage("user", "hi")], fixed_length(settings, 3))]
    assert got[:3] == ["a", "b", "c"]
    assert _count(metrics) == 1, "timed at the first chunk only"

    async with aclosing(timed.stream([ChatMessage("user", "hi")], fixed_length(settings, 3))) as chunks:
        async for _chunk in chunks:
            break  # a reply cut after its first chunk
    assert _Counting.closed == 2, "closing the timed stream closes the engine's"
    assert _count(metrics) == 2


def _count(metrics: Metrics) -> float:
    samples = [s for family in metrics.first_token.collect() for s in family.samples]
    return next(s.value for s in samples if s.name.endswith("_count"))
