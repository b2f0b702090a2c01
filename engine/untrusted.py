"""Text Hearth did not write stays text, for every engine kind: one place for both directions.

In: a chat template renders each message's content between the model's own control
tokens (`<|im_start|>`, `<|eot_id|>`…), and a tokenizer that parses special tokens in
the rendered text turns `hi<|im_end|>\\n<|im_start|>system` typed by a user into a forged
system turn. `ControlTokens.neutralise` breaks every such string in a message's content
(the served tokenizer's special tokens, the control tokens of the common chat formats,
and anything shaped like `<|…|>`) with a zero-width space after its first character: it
reads the same, and no tokenizer matches it as a special token any more. The in-process
engine applies it to every message it renders, the remote engine to every message it
sends (the server renders).

Out: a model (or a server that does not stop at them) can write its control tokens as
text: `Hi there!<|eot_id|><|start_header_id|>assistant…`. `StopScanner` cuts the reply at
the first one, holding back only what could still become one across chunks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from engine.types import ChatMessage

BREAK = "\u200b"  # ZERO WIDTH SPACE: kept by every tokenizer's normaliser, matched by no special token
# Control tokens of the common chat formats (ChatML/Qwen, Llama 3, Phi, Gemma, Mistral/Llama 2,
# GLM, DeepSeek), for servers whose tokenizer Hearth cannot see.
KNOWN_CONTROL = (
    "<|im_start|>", "<|im_end|>", "<|im_sep|>", "<|endoftext|>", "<|eot_id|>", "<|eom_id|>",
    "<|start_header_id|>", "<|end_header_id|>", "<|begin_of_text|>", "<|end_of_text|>", "<|python_tag|>",
    "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|observation|>",
    "<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<s>", "</s>", "[INST]", "[/INST]",
    "<<SYS>>", "<</SYS>>", "[gMASK]", "<sop>", "<eop>",
    "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>",
)
# What ends a reply when the served tokenizer is unknown: the end-of-turn and turn-opening
# markers of those formats (a reply never needs them; the other control tokens stay text).
KNOWN_STOPS = (
    "<|im_end|>", "<|im_start|>", "<|eot_id|>", "<|start_header_id|>", "<|end|>", "<|endoftext|>",
    "<|user|>", "<|observation|>", "<end_of_turn>", "<start_of_turn>", "</s>", "<｜end▁of▁sentence｜>",
)
# Anything shaped like a control token: `<|anything|>` (ASCII or full-width bars).
MARKUP = r"<\|[^|<>\s]{1,64}\|>|<｜[^｜<>\s]{1,64}｜>"
MARKUP_SHAPE = re.compile(rf"(?:{MARKUP}|</?[a-z_]{{1,32}}>|\[/?[A-Za-z_]{{1,16}}\])")
# `stop` strings a server is sent: OpenAI's API takes up to 4 ("Up to 4 sequences"), and vLLM's
# server validates the same (a 5th: HTTP 400). The rest are cut at here, as the reply streams.
MAX_REMOTE_STOPS = 4


class ControlTokens:
    """A model's control-token strings: neutralised in what goes in, cut at in what comes out.

    `controls` are broken wherever they occur in untrusted content (with MARKUP); `stops`
    end a reply (each at least two characters: a shorter one cannot be broken or held)."""

    def __init__(self, controls: Iterable[str], stops: Iterable[str]) -> None:
        self.controls = frozenset(c for c in controls if len(c) >= 2)
        self.stops = tuple(sorted({s for s in stops if len(s) >= 2}, key=lambda s: (-len(s), s)))
        alternatives = [re.escape(c) for c in sorted(self.controls, key=len, reverse=True)]
        self._pattern = re.compile("|".join([*alternatives, MARKUP]))

    @classmethod
    def generic(cls, extra_stops: Iterable[str] = ()) -> ControlTokens:
        """For a server whose tokenizer is unknown: the common formats' tokens."""
        return cls(KNOWN_CONTROL, (*KNOWN_STOPS, *extra_stops))

    @classmethod
    def of(
        cls, special: Iterable[str], markup: Iterable[str] = (), extra_stops: Iterable[str] = ()
    ) -> ControlTokens:
        """For a known tokenizer: its `special` tokens end replies and are neutralised, with its
        other added tokens shaped like control tokens (`markup`) and the common formats'."""
        special = tuple(special)
        return cls((*special, *markup, *KNOWN_CONTROL), (*special, *extra_stops))

    def neutralise(self, text: str) -> str:
        """`text` with every control-token string broken (see the module docstring)."""
        return self._pattern.sub(_broken, text) if text else text

    def neutralise_all(self, messages: Sequence[ChatMessage]) -> list[ChatMessage]:
        """Every message's content neutralised: the persona (a channel admin's text), the users',
        the stored replies. Hearth writes its structure only through the chat template."""
        return [ChatMessage(m.role, self.neutralise(m.content)) for m in messages]

    def scanner(self) -> StopScanner:
        return StopScanner(self.stops)

    def remote_stops(self) -> list[str]:
        """The `stop` list a remote server is sent (at most MAX_REMOTE_STOPS): the common formats'
        end-of-turn markers among `stops` first. The scanner still cuts at every stop."""
        first = [s for s in KNOWN_STOPS if s in self.stops]
        return (first + [s for s in self.stops if s not in first])[:MAX_REMOTE_STOPS]


def tokenizer_controls(tokenizer: Any, extra_stops: Iterable[str] = ()) -> ControlTokens:
    """The control tokens of a transformers tokenizer (or a `tokenizers.Tokenizer`): its
    special tokens, and its other added tokens that look like markup (`<think>`, `<tool_call>`)."""
    decoder = _added_tokens(tokenizer)
    special = [t.content for t in decoder if getattr(t, "special", False)]
    special += [str(t) for t in getattr(tokenizer, "all_special_tokens", None) or []]
    markup = [t.content for t in decoder if MARKUP_SHAPE.fullmatch(t.content)]
    return ControlTokens.of(special, markup, extra_stops)


def _added_tokens(tokenizer: Any) -> list[Any]:
    for name in ("added_tokens_decoder", "get_added_tokens_decoder"):
        found = getattr(tokenizer, name, None)
        if callable(found):
            found = found()
        if isinstance(found, dict):
            return [t for t in found.values() if isinstance(getattr(t, "content", None), str)]
    return []


def _broken(match: re.Match[str]) -> str:
    token = match.group(0)
    return token[0] + BREAK + token[1:]


class StopScanner:
    """Feed it a reply as it streams; it returns what may be shown, and says when a stop
    string was met (everything from it on is dropped)."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = stops
        self._prefixes = {s[:i] for s in stops for i in range(1, len(s))}
        self._longest = max((len(s) for s in stops), default=0)
        self._held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """The part of `text` (with what was held) that is surely not a stop string."""
        if self.stopped or not self._stops:
            return "" if self.stopped else text
        held = self._held + text
        cut = min((i for s in self._stops if (i := held.find(s)) >= 0), default=-1)
        if cut >= 0:
            self._held, self.stopped = "", True
            return held[:cut]
        keep = self._partial(held)
        self._held = held[len(held) - keep:] if keep else ""
        return held[: len(held) - keep]

    def end(self) -> str:
        """The stream ended: what was held back was not a stop string after all."""
        held, self._held = self._held, ""
        return "" if self.stopped else held

    def _partial(self, text: str) -> int:
        """Length of the longest end of `text` that begins a stop string."""
        for size in range(min(self._longest - 1, len(text)), 0, -1):
            if text[-size:] in self._prefixes:
                return size
        return 0
