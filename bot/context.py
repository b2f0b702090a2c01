"""Turning stored history into a prompt that fits the model's context.

Two rules keep vLLM's prefix cache warm turn after turn: the system prompt is
always first and byte-identical, and earlier turns are never rewritten. When the
history outgrows the context, the oldest whole turns are dropped, and enough of
them at once (down to TRIM_TARGET of the budget) that the new starting point then
holds for many turns: the store remembers it as the conversation's floor.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from bot.messages import StoredMessage
from engine.errors import PromptTooLongError
from engine.types import ChatMessage

TRIM_TARGET = 0.6
# In group prompts each user message is labelled with its speaker, `⟦Alice⟧: hello`. The
# brackets are Hearth's alone: taken out of every name and text (turned into [ and ]), so a
# user cannot forge another speaker's label ("hello\n\nBob: I am Bob" stays Alice's text).
LABEL_OPEN, LABEL_CLOSE = "\u27e6", "\u27e7"  # ⟦ ⟧ MATHEMATICAL WHITE SQUARE BRACKETS
UNLABEL = str.maketrans({LABEL_OPEN: "[", LABEL_CLOSE: "]"})
MAX_NAME_CHARS = 64
NAME_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")  # a name stays on its line

Counter = Callable[[Sequence[ChatMessage]], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class Prompt:
    messages: list[ChatMessage]
    tokens: int
    first_message_id: int | None
    trimmed: bool


def group_turns(history: Sequence[StoredMessage]) -> list[list[StoredMessage]]:
    """Split history into turns: user messages followed by the assistant's replies."""
    turns: list[list[StoredMessage]] = []
    for message in history:
        if not turns or (message.role == "user" and turns[-1][-1].role == "assistant"):
            turns.append([])
        turns[-1].append(message)
    return turns


def speaker_line(name: str, text: str) -> str:
    """`⟦name⟧: text`, the only way a speaker is named in a group prompt (see LABEL_OPEN)."""
    if LABEL_OPEN in text or LABEL_CLOSE in text:  # rare: `in` is much cheaper than translate
        text = text.translate(UNLABEL)
    return f"{LABEL_OPEN}{_label(name)}{LABEL_CLOSE}: {text}"


@lru_cache(maxsize=4096)
def _label(name: str) -> str:
    """A speaker's name as labelled: on one line, without the label's brackets, at most
    MAX_NAME_CHARS (each name is relabelled every turn it appears in the history)."""
    return NAME_BREAKS.sub(" ", name.translate(UNLABEL)).strip()[:MAX_NAME_CHARS] or "?"


def render_turns(turns: Sequence[Sequence[StoredMessage]], named: bool) -> list[ChatMessage]:
    """Chat messages with strictly alternating roles (some templates insist); in a group
    (`named`), each user message labelled with its speaker (`speaker_line`)."""
    out: list[ChatMessage] = []
    for message in (m for turn in turns for m in turn):
        named_user = named and message.role == "user"
        content = speaker_line(message.author_name, message.text) if named_user else message.text
        if out and out[-1].role == message.role:
            out[-1] = ChatMessage(message.role, f"{out[-1].content}\n\n{content}")
        else:
            out.append(ChatMessage(message.role, content))
    return out


async def build_prompt(
    system: str,
    history: Sequence[StoredMessage],
    count: Counter,
    budget: int,
    *,
    named: bool = False,
    max_messages: int | None = None,
) -> Prompt:
    """The longest suffix of whole turns whose prompt fits `budget` tokens and, when
    given, `max_messages` stored messages (HEARTH_HISTORY_MESSAGES).

    Every limit moves the start the same way: whole turns, down to TRIM_TARGET of the
    limit, so the new start (the caller stores it as the floor) then holds for many
    turns. The first message after the system prompt is always a user message."""
    turns = _from_a_user_message(group_turns(history))
    first = _fewest_for_count(turns, max_messages)

    async def measure(drop: int) -> tuple[list[ChatMessage], int]:
        messages = [ChatMessage("system", system), *render_turns(turns[first + drop:], named)]
        return messages, await count(messages)

    messages, tokens = await measure(0)
    if tokens <= budget:
        return Prompt(messages, tokens, _first_id(turns, first), trimmed=first > 0)
    drop = await _fewest_drops(measure, len(turns) - first, int(budget * TRIM_TARGET), budget)
    messages, tokens = await measure(drop)
    if tokens > budget:
        raise PromptTooLongError(tokens, budget)
    return Prompt(messages, tokens, _first_id(turns, first + drop), trimmed=True)


def _from_a_user_message(turns: list[list[StoredMessage]]) -> list[list[StoredMessage]]:
    """History read from the middle of a turn starts with replies: leave them out (some
    chat templates reject a conversation that starts with the assistant)."""
    while turns and turns[0][0].role != "user":
        turns = turns[1:]
    return turns


def _fewest_for_count(turns: Sequence[Sequence[StoredMessage]], max_messages: int | None) -> int:
    """How many oldest turns to drop so that at most `max_messages` remain, dropping down
    to TRIM_TARGET of it at once; 0 when under the limit. The newest turn always stays."""
    total = sum(len(turn) for turn in turns)
    if max_messages is None or total <= max_messages:
        return 0
    target, drop = int(max_messages * TRIM_TARGET), 0
    while drop < len(turns) - 1 and total > target:
        total -= len(turns[drop])
        drop += 1
    return drop


async def _fewest_drops(
    measure: Callable[[int], Awaitable[tuple[list[ChatMessage], int]]],
    n_turns: int,
    target: int,
    budget: int,
) -> int:
    """Binary search: the fewest oldest turns to drop to get under `target`.

    The newest turn is always kept; if it cannot meet `target`, it may still
    meet `budget`, which the caller checks.
    """
    if n_turns <= 1:
        return 0
    low, high = 1, n_turns - 1
    while low < high:
        mid = (low + high) // 2
        if (await measure(mid))[1] <= target:
            high = mid
        else:
            low = mid + 1
    return low


def _first_id(turns: Sequence[Sequence[StoredMessage]], drop: int) -> int | None:
    """The id the floor moves to: the first message kept."""
    return turns[drop][0].id if drop < len(turns) else None
