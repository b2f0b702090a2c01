"""Thinking split from answering, with the tags cut at every position of the stream."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest

from engine.reasoning import ThinkSplitter, split_reasoning
from engine.types import ReplyChunk

QWEN3 = "<think>\nThe user greets me; I should greet back.\n</think>\n\nHello! 你好！"
R1 = "Let me think: 2+2 is 4.</think>The answer is 4."
PLAIN = "Just an answer, no thinking. <b>bold</b> and a lone < sign."


def split(text: str, cuts: list[int], starts_inside: bool = False) -> tuple[str, str]:
    splitter = ThinkSplitter(starts_inside)
    thinking, answer = "", ""
    for start, end in zip([0, *cuts], [*cuts, len(text)], strict=True):
        t, a = splitter.feed(text[start:end])
        thinking, answer = thinking + t, answer + a
    t, a = splitter.end()
    return thinking + t, answer + a


@pytest.mark.parametrize("cut", range(len(QWEN3) + 1))
def test_qwen3_thinking_is_split_off_wherever_the_stream_is_cut(cut: int) -> None:
    assert split(QWEN3, [cut]) == ("\nThe user greets me; I should greet back.\n", "Hello! 你好！")


def test_qwen3_streamed_one_character_at_a_time() -> None:
    assert split(QWEN3, list(range(1, len(QWEN3)))) == (
        "\nThe user greets me; I should greet back.\n", "Hello! 你好！"
    )


@pytest.mark.parametrize("cut", range(len(R1) + 1))
def test_deepseek_r1_thinks_until_the_closing_tag(cut: int) -> None:
    assert split(R1, [cut], starts_inside=True) == ("Let me think: 2+2 is 4.", "The answer is 4.")


@pytest.mark.parametrize("cut", range(len(PLAIN) + 1))
def test_an_answer_without_thinking_passes_whole(cut: int) -> None:
    assert split(PLAIN, [cut]) == ("", PLAIN)


def test_thinking_cut_by_the_token_limit_is_all_thinking() -> None:
    assert split("<think>still going and go", [9, 15]) == ("still going and go", "")


def test_a_partial_opening_tag_at_the_end_is_answer() -> None:
    assert split("<thi", [2]) == ("", "<thi")


async def test_split_reasoning_moves_thinking_out_of_the_text() -> None:
    async def stream() -> AsyncGenerator[ReplyChunk, None]:
        for piece in ["<th", "ink>plan", " it</th", "ink>\n\nDone", "."]:
            yield ReplyChunk(piece)
        yield ReplyChunk("", True, "stop", 10, 0, 5)

    chunks = [c async for c in split_reasoning(stream(), "qwen3")]

    assert "".join(c.text for c in chunks) == "Done."
    assert "".join(c.reasoning for c in chunks) == "plan it"
    assert chunks[-1].finished and chunks[-1].reply_tokens == 5
