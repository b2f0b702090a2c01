"""Tokenising prompts piece by piece gives exactly the tokenizer's ids, and each turn only
tokenises what is new (the demo tokenizer and its real chat template)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest

from engine.segments import SegmentTokens

WORDS = ("the", "quick", "brown", "fox", "a", "lazy", "dog", "你好", "世界", "👍🏽", "e\u0301",
         "hello\nthere", "", "friend")


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from engine.demo_model import build_tokenizer

    return build_tokenizer()


def rendered(tokenizer: Any, texts: Sequence[str]) -> str:
    roles = ("user", "assistant")
    messages = [{"role": roles[i % 2], "content": text} for i, text in enumerate(texts)]
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))


def conversation(seed: int, messages: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 30))) for _ in range(messages)]


def test_piecewise_ids_are_the_tokenizers_ids(tokenizer: Any) -> None:
    segments = SegmentTokens(tokenizer, lambda texts: rendered(tokenizer, texts))
    assert segments.incremental, "the demo tokenizer's pieces add up"
    for seed in range(5):
        text = rendered(tokenizer, conversation(seed, 40))
        assert segments.ids(text) == tokenizer.encode(text, add_special_tokens=False)


class Counting:
    """The tokenizer, counting what it is asked to encode."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self.encoded_chars = 0
        self.added_tokens_decoder = tokenizer.added_tokens_decoder

    def get_added_vocab(self) -> dict[str, int]:
        return dict(self._tokenizer.get_added_vocab())

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        self.encoded_chars += len(text)
        return list(self._tokenizer.encode(text, add_special_tokens=add_special_tokens))


def test_the_next_turn_tokenises_only_its_new_messages(tokenizer: Any) -> None:
    counting = Counting(tokenizer)
    segments = SegmentTokens(counting, lambda texts: rendered(tokenizer, texts))
    history = conversation(7, 200)
    segments.ids(rendered(tokenizer, history[:198]))
    counting.encoded_chars = 0

    text = rendered(tokenizer, history)  # the next turn: two more messages
    assert segments.ids(text) == tokenizer.encode(text, add_special_tokens=False)
    new = sum(len(t) for t in history[198:])
    assert counting.encoded_chars < new + 100, "only the new messages (and the fresh end) are tokenised"


def test_a_tokenizer_whose_pieces_do_not_add_up_is_used_whole(tokenizer: Any) -> None:
    class Prefixing(Counting):
        """Like a SentencePiece tokenizer that prefixes every input with a space."""

        def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
            return super().encode(" " + text, add_special_tokens)

    segments = SegmentTokens(Prefixing(tokenizer), lambda texts: rendered(tokenizer, texts))
    assert not segments.incremental
    text = rendered(tokenizer, conversation(3, 6))
    assert segments.ids(text) == tokenizer.encode(" " + text, add_special_tokens=False)
