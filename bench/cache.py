"""`hearth bench cache`: how much of each turn's prompt vLLM's prefix cache serves.

C channels hold T-turn conversations through the pipeline (channels at once,
turns in order). The hit rate on turns 2..T comes from vLLM's own counters
(`vllm:prefix_cache_hits` / `vllm:prefix_cache_queries`). Next to it stands the
best any prompt layout could get from a cache of whole blocks (see
`cacheable_tokens`), computed from the very prompts the pipeline sent,
re-rendered with the model's tokenizer. The same conversations are then held
with a persona that shows the time to the second, as some bots do.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.harness import BenchChannel, bench_app, channel_message
from bench.workload import text_for
from bot.app.builder import App
from bot.app.settings import Settings
from bot.context import group_turns, render_turns
from bot.messages import ConversationKey, StoredMessage
from bot.persona import DEFAULT_PERSONA
from engine.base import Engine
from engine.models import ModelResolver
from engine.types import ChatMessage
from engine.vllm_engine import VllmEngine, prefix_cache_counters

DEFAULT_CHANNELS = 16
DEFAULT_TURNS = 10
DEFAULT_REPLY_TOKENS = 32
CPU_BLOCK_SIZE = 128  # vLLM's prefix-cache block on CPU, when the engine cannot tell us
# Real turns are seconds to minutes apart; the benchmark runs them back to back, so
# the clock persona shows the time a real chat would have reached, not the wall clock.
TURN_GAP_S = 30
COUNTER_SETTLE_S = 0.2  # the counters arrive with the engine's next output batch
LAYOUTS = ("stable", "clock")


def cacheable_tokens(seen: Sequence[int], prompt: Sequence[int], block: int) -> int:
    """Tokens of `prompt` a block cache can serve at best, having seen `seen` before.

    Only whole blocks are cached, matched from the start; and vLLM always
    computes a prompt's last token itself, so at most len(prompt) - 1 count.
    """
    shared = 0
    for a, b in zip(seen, prompt, strict=False):
        if a != b:
            break
        shared += 1
    return min(shared, len(prompt) - 1) // block * block


@dataclass(frozen=True, slots=True)
class LayoutResult:
    """One prompt layout, turns 2..T of every channel."""

    layout: str
    queries: int
    hits: int
    best_tokens: int
    prompt_only_tokens: int
    prompt_tokens: int
    cached_tokens: int
    mismatches: int

    @property
    def hit_rate(self) -> float:
        return self.hits / self.queries if self.queries else 0.0

    @property
    def best_possible_hit_rate(self) -> float:
        return self.best_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    @property
    def prompt_only_hit_rate(self) -> float:
        return self.prompt_only_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    @property
    def per_request_hit_rate(self) -> float:
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    def to_json(self) -> dict[str, object]:
        best = self.best_possible_hit_rate
        return {
            "hit_rate": round(self.hit_rate, 4),
            "best_possible_hit_rate": round(best, 4),
            "hit_vs_best": round(self.hit_rate / best, 4) if best else None,
            "prompt_only_hit_rate": round(self.prompt_only_hit_rate, 4),
            "per_request_hit_rate": round(self.per_request_hit_rate, 4),
            "prefix_cache_queries": self.queries,
            "prefix_cache_hits": self.hits,
            "prompt_tokens": self.prompt_tokens,
            "best_possible_tokens": self.best_tokens,
            "prompt_mismatches": self.mismatches,
        }


@dataclass(frozen=True, slots=True)
class CacheResult:
    model: str
    channels: int
    turns: int
    reply_tokens: int
    block_size: int
    stable: LayoutResult
    clock: LayoutResult | None

    def to_json(self) -> dict[str, object]:
        stable = self.stable.to_json()
        return {
            "benchmark": "cache",
            "model": self.model,
            "channels": self.channels,
            "turns": self.turns,
            "reply_tokens": self.reply_tokens,
            "block_size": self.block_size,
            "hit_rate": stable["hit_rate"],
            "best_possible_hit_rate": stable["best_possible_hit_rate"],
            "hit_vs_best": stable["hit_vs_best"],
            "clock_hit_rate": self.clock.to_json()["hit_rate"] if self.clock else None,
            "layouts": {r.layout: r.to_json() for r in (self.stable, self.clock) if r},
        }


@dataclass(frozen=True, slots=True)
class CachePlan:
    channels: int = DEFAULT_CHANNELS
    turns: int = DEFAULT_TURNS
    reply_tokens: int = DEFAULT_REPLY_TOKENS
    clock: bool = True


async def run_cache(settings: Settings, engine: Engine, plan: CachePlan) -> CacheResult:
    """Both layouts on an already started vLLM engine."""
    source = await asyncio.to_thread(ModelResolver(settings.data_dir), engine.spec)
    tokenizer = await asyncio.to_thread(_load_tokenizer, str(source))
    block = engine_block_size(engine)
    renderer = Renderer(tokenizer, block, engine.spec.template_kwargs)
    results = [
        await _run_layout(settings, engine, plan, layout, renderer)
        for layout in (LAYOUTS if plan.clock else LAYOUTS[:1])
    ]
    return CacheResult(
        engine.spec.name, plan.channels, plan.turns, plan.reply_tokens, block,
        results[0], results[1] if len(results) > 1 else None,
    )


async def _run_layout(
    settings: Settings, engine: Engine, plan: CachePlan, layout: str, renderer: Renderer
) -> LayoutResult:
    channel = BenchChannel()
    start = dt.datetime.now()
    async with bench_app(settings, engine, plan.reply_tokens) as app:
        systems: list[list[str]] = [[] for _ in range(plan.channels)]
        before = (0, 0)
        for turn in range(plan.turns):
            if turn == 1:
                before = await settled_counters()
            now = start + dt.timedelta(seconds=turn * TURN_GAP_S)
            await asyncio.gather(*(
                _one_turn(app, channel, layout, c, turn, systems[c], now) for c in range(plan.channels)
            ))
        queries, hits = (a - b for a, b in zip(await settled_counters(), before, strict=True))
        histories = [await app.store.history(_key(layout, c), 1000) for c in range(plan.channels)]
    return renderer.score(layout, queries, hits, systems, histories)


async def _one_turn(
    app: App, channel: BenchChannel, layout: str, number: int, turn: int, systems: list[str],
    now: dt.datetime,
) -> None:
    msg = channel_message(_tag(layout), number, text_for(number, turn), turn)
    if layout == "clock":
        await app.store.set_channel_persona(msg.key, clock_persona(app.settings.persona, now))
    systems.append(await app.personas.system_prompt(msg))
    await app.pipeline.handle(msg, channel)


def clock_persona(persona: str | None, now: dt.datetime) -> str:
    """The persona with the time to the second wherever it shows the date."""
    return (persona or DEFAULT_PERSONA).replace("{date}", "{date} " + now.strftime("%H:%M:%S"))


def _tag(layout: str) -> str:
    return f"k{layout}"


def _key(layout: str, channel: int) -> ConversationKey:
    return channel_message(_tag(layout), channel, "").key


class Renderer:
    """Re-renders each turn's prompt as the engine did, and scores it against the cache."""

    def __init__(self, tokenizer: Any, block: int, template_kwargs: dict[str, Any] | None = None) -> None:
        self._tokenizer = tokenizer
        self._block = block
        self._template_kwargs = template_kwargs or {}

    def ids(self, messages: Sequence[ChatMessage]) -> list[int]:
        rendered = self._tokenizer.apply_chat_template(
            [m.as_dict() for m in messages], tokenize=True, add_generation_prompt=True, return_dict=False,
            **self._template_kwargs,
        )
        return list(rendered)

    def reply_ids(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def score(
        self, layout: str, queries: int, hits: int, systems: list[list[str]],
        histories: list[list[StoredMessage]],
    ) -> LayoutResult:
        best = prompt_only = prompt = cached = mismatches = 0
        for system, history in zip(systems, histories, strict=True):
            turns = group_turns(history)
            seen: list[int] = []
            asked_before: list[int] = []
            for t, turn in enumerate(turns):
                asked = [m for m in turn if m.role == "user"]
                ids = self.ids([ChatMessage("system", system[t]), *render_turns([*turns[:t], asked], True)])
                reply = turn[-1]
                if reply.role != "assistant" or reply.prompt_tokens != len(ids):
                    mismatches += 1
                    continue
                if t > 0:
                    best += cacheable_tokens(seen, ids, self._block)
                    prompt_only += cacheable_tokens(asked_before, ids, self._block)
                    prompt += len(ids)
                    cached += reply.cached_tokens
                seen, asked_before = ids + self.reply_ids(reply.text), ids
        return LayoutResult(layout, queries, hits, best, prompt_only, prompt, cached, mismatches)


def engine_block_size(engine: Engine) -> int:
    """The engine's prefix-cache block size; vLLM's CPU default when it does not say."""
    block = engine.cache_block_size if isinstance(engine, VllmEngine) else None
    return block or CPU_BLOCK_SIZE


async def settled_counters() -> tuple[int, int]:
    await asyncio.sleep(COUNTER_SETTLE_S)
    return prefix_cache_counters()


def _load_tokenizer(source: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(source)
