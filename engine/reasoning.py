"""Thinking apart from answering: a streamed reply split into its reasoning and its answer.

Reasoning models write their thinking first: Qwen3 between `<think>` and
`</think>`; DeepSeek-R1 style templates open the tag themselves, so the output is
thinking until `</think>`. The split works on streamed text, with tags cut
anywhere across chunks, so it serves every engine kind (in-process vLLM, and a
remote server whose parser is off); vLLM's own parsers need token ids this layer
does not have. The answer never carries the thinking: the core stores, judges
and feeds back only the answer.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator

from engine.types import ReplyChunk

OPEN = "<think>"
CLOSE = "</think>"


class _State(enum.Enum):
    BEFORE = "before"  # nothing seen yet: thinking may open
    INSIDE = "inside"  # thinking, until CLOSE
    ANSWER_START = "answer-start"  # the answer's leading blank space is dropped
    ANSWER = "answer"


class ThinkSplitter:
    """Feed it text as it streams; it returns (thinking, answer) deltas, holding back
    only what could still turn out to be part of a tag."""

    def __init__(self, starts_inside: bool = False) -> None:
        self._state = _State.INSIDE if starts_inside else _State.BEFORE
        self._held = ""

    def feed(self, text: str) -> tuple[str, str]:
        """The thinking and the answer that `text` (the next piece of the stream) completes."""
        self._held += text
        thinking, answer = "", ""
        while True:
            step = self._step()
            if step is None:
                return thinking, answer
            thinking, answer = thinking + step[0], answer + step[1]

    def end(self) -> tuple[str, str]:
        """The stream ended: whatever was held back, as thinking (cut while thinking) or answer."""
        held, self._held = self._held, ""
        if self._state is _State.INSIDE:
            return held, ""
        if self._state is _State.ANSWER_START:
            return "", held.lstrip()
        return "", held

    @property
    def thinking(self) -> bool:
        """Whether the stream is inside its thinking now."""
        return self._state is _State.INSIDE

    def _step(self) -> tuple[str, str] | None:
        """Consume what can be decided; None when nothing more can be until more text comes."""
        held = self._held
        if self._state is _State.BEFORE:
            start = held.lstrip()
            if start.startswith(OPEN):
                self._held, self._state = start[len(OPEN):], _State.INSIDE
                return "", ""
            if not start or OPEN.startswith(start):
                return None  # blank so far, or a tag still arriving
            self._state = _State.ANSWER
            return "", ""
        if self._state is _State.INSIDE:
            at = held.find(CLOSE)
            if at >= 0:
                self._held, self._state = held[at + len(CLOSE):], _State.ANSWER_START
                return held[:at], ""
            keep = _partial_suffix(held, CLOSE)
            self._held = held[len(held) - keep:]
            return (held[: len(held) - keep], "") if len(held) > keep else None
        if self._state is _State.ANSWER_START:
            start = held.lstrip()
            if not start:
                self._held = ""
                return None
            self._held, self._state = start, _State.ANSWER
            return "", ""
        if not held:
            return None
        self._held = ""
        return "", held


def _partial_suffix(text: str, tag: str) -> int:
    """The length of the longest end of `text` that is a beginning of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


async def split_reasoning(
    chunks: AsyncGenerator[ReplyChunk, None], parser: str
) -> AsyncGenerator[ReplyChunk, None]:
    """`chunks` with thinking moved to `ReplyChunk.reasoning`; `parser` is the registry's
    `reasoning` (`qwen3` or `deepseek-r1`). The final chunk passes through unchanged."""
    splitter = ThinkSplitter(starts_inside=parser == "deepseek-r1")
    async for chunk in chunks:
        if chunk.finished:
            thinking, answer = splitter.end()
            if thinking or answer:
                yield ReplyChunk(answer, reasoning=thinking)
            yield chunk
            return
        thinking, answer = splitter.feed(chunk.text)
        if thinking or answer:
            yield ReplyChunk(answer, reasoning=thinking)
