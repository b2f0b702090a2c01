"""An in-process Hearth built exactly as `hearth run` builds it, with a recording adapter.

Benchmarks drive `Hearth.handle` through `BenchAdapter`, which plays a platform:
it records every send and edit and when each reply first appeared. `BenchHearth`
differs from `Hearth` in one thing only: every reply has a fixed length (EOS is
ignored), so the designs being compared generate the same number of tokens.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from adapters.base import ReplyLimits
from bot.core import Hearth
from bot.messages import ConversationKey, IncomingMessage
from bot.moderation import Gate
from bot.registry import Registry
from bot.runner import build_engine, make_gate
from bot.settings import Settings
from bot.store import SqliteStore, Store
from engine.base import Engine, Sampling
from engine.vllm_engine import VllmEngine

PLATFORM = "bench"
# Discord and Telegram both throttle edits of one message to about one a second,
# so real adapters stream with this interval; see the README's Benchmarks section.
PLATFORM_EDIT_INTERVAL_S = 1.0
MAX_CHARS = 2000


@dataclass(slots=True)
class Posted:
    """One platform message the adapter was asked to post, and its edits."""

    key: ConversationKey
    message_id: str
    text: str
    edits: int = 0


@dataclass(slots=True)
class BenchAdapter:
    """A platform that answers instantly and remembers what it was asked to do."""

    edit_interval: float = PLATFORM_EDIT_INTERVAL_S
    platform: str = PLATFORM
    posted: dict[str, Posted] = field(default_factory=dict)
    first_sent: dict[ConversationKey, float] = field(default_factory=dict)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    limits: ReplyLimits = field(init=False)

    def __post_init__(self) -> None:
        self.limits = ReplyLimits(max_chars=MAX_CHARS, edit_interval=self.edit_interval)

    async def run(self) -> None:
        await self.stopped.wait()

    async def stop(self) -> None:
        self.stopped.set()

    async def send(self, key: ConversationKey, text: str, *, reply_to: str | None = None) -> str:
        now = time.perf_counter()
        message_id = f"b{len(self.posted) + 1}"
        self.posted[message_id] = Posted(key, message_id, text)
        self.first_sent.setdefault(key, now)
        return message_id

    async def edit(self, key: ConversationKey, message_id: str, text: str) -> None:
        posted = self.posted[message_id]
        posted.text = text
        posted.edits += 1

    @property
    def sends(self) -> int:
        return len(self.posted)

    @property
    def edits(self) -> int:
        return sum(p.edits for p in self.posted.values())

    def texts(self, key: ConversationKey) -> list[str]:
        return [p.text for p in self.posted.values() if p.key == key]


class BenchHearth(Hearth):
    """A Hearth whose replies all have `reply_tokens` tokens: same work in every design."""

    def __init__(
        self, settings: Settings, store: Store, engine: Engine, registry: Registry, gate: Gate,
        reply_tokens: int,
    ) -> None:
        super().__init__(settings, store, engine, registry, gate)
        self.reply_tokens = reply_tokens

    def sampling(self) -> Sampling:
        return fixed_length(super().sampling(), self.reply_tokens)


def fixed_length(sampling: Sampling, tokens: int) -> Sampling:
    return dataclasses.replace(sampling, max_tokens=tokens, ignore_eos=True)


def bench_settings(base: Settings, model: str | None = None, **overrides: object) -> Settings:
    """The user's settings, with the benchmark's model; the database always lives elsewhere."""
    update: dict[str, object] = dict(overrides)
    if model:
        update["model"] = model
    return base.model_copy(update=update)


@asynccontextmanager
async def started_engine(settings: Settings) -> AsyncIterator[VllmEngine]:
    """The engine `hearth run` would build for these settings, started."""
    spec = Registry.load(settings.models_file).lookup(settings.model)
    async with build_engine(settings, spec) as engine:
        yield engine


@asynccontextmanager
async def bench_core(
    settings: Settings, engine: Engine, reply_tokens: int
) -> AsyncIterator[BenchHearth]:
    """A Hearth on a fresh SqliteStore in a temporary directory, on an already started engine."""
    with tempfile.TemporaryDirectory(prefix="hearth-bench-") as tmp:
        db_settings = settings.model_copy(update={"db_path": Path(tmp) / "bench.sqlite3"})
        async with SqliteStore(db_settings.database) as store:
            registry = Registry.load(settings.models_file)
            gate = make_gate(db_settings, store)
            yield BenchHearth(db_settings, store, engine, registry, gate, reply_tokens=reply_tokens)


def channel_message(
    tag: str, channel: int, text: str, turn: int = 0, *, admin: bool = False
) -> IncomingMessage:
    """A group-channel message from a user of bench channel `channel` in run `tag`."""
    return IncomingMessage(
        key=ConversationKey(PLATFORM, f"{tag}-c{channel}"),
        author_id=f"u{channel}",
        author_name=f"user{channel}",
        text=text,
        message_id=f"{tag}-c{channel}-t{turn}",
        author_is_admin=admin,
        channel_name=f"#{tag}-c{channel}",
    )
