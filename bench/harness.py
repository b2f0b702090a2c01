"""Hearth built exactly as `hearth run` builds it, with a recording reply channel.

Benchmarks drive `App.pipeline` through `BenchChannel`, which plays a platform:
it records every send and edit and when each reply first appeared. The app
differs from the running bot in two things only, both handed to the builder:
every reply has a fixed length (EOS is ignored), so the designs being compared
generate the same number of tokens; and the database is a fresh file in a
temporary directory, never the user's.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bot.app.builder import App, HearthBuilder, build_engine, sampling_from
from bot.app.settings import Settings
from bot.messages import ConversationKey, IncomingMessage
from bot.ports import ReplyLimits
from engine.base import Engine
from engine.registry import Registry
from engine.types import Sampling

PLATFORM = "bench"
# Discord and Telegram both throttle edits of one message to about one a second,
# so real adapters stream with this interval; see the README's Benchmarks section.
PLATFORM_EDIT_INTERVAL_S = 1.0
MAX_CHARS = 2000


@dataclass(slots=True)
class Posted:
    """One platform message the channel was asked to post, and its edits."""

    key: ConversationKey
    message_id: str
    text: str
    edits: int = 0
    deleted: bool = False


@dataclass(slots=True)
class BenchChannel:
    """A platform that answers instantly and remembers what it was asked to do."""

    edit_interval: float = PLATFORM_EDIT_INTERVAL_S
    posted: dict[str, Posted] = field(default_factory=dict)
    first_sent: dict[ConversationKey, float] = field(default_factory=dict)
    limits: ReplyLimits = field(init=False)

    def __post_init__(self) -> None:
        self.limits = ReplyLimits(max_chars=MAX_CHARS, edit_interval=self.edit_interval)

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

    async def delete(self, key: ConversationKey, message_id: str) -> None:
        self.posted[message_id].deleted = True

    @property
    def sends(self) -> int:
        return len(self.posted)

    @property
    def edits(self) -> int:
        return sum(p.edits for p in self.posted.values())

    def texts(self, key: ConversationKey) -> list[str]:
        """What each message still shown in `key`'s conversation says."""
        return [p.text for p in self.posted.values() if p.key == key and not p.deleted]


def fixed_length(settings: Settings, tokens: int) -> Sampling:
    """The settings' sampling, except that every reply is exactly `tokens` long."""
    return dataclasses.replace(sampling_from(settings), max_tokens=tokens, ignore_eos=True)


def bench_settings(base: Settings, model: str | None = None) -> Settings:
    """The user's settings, with the benchmark's model (the database never is the user's:
    see `bench_app`)."""
    return base.model_copy(update={"model": model}) if model else base


@asynccontextmanager
async def started_engine(settings: Settings) -> AsyncIterator[Engine]:
    """The engine `hearth run` would build for these settings, started, closed on exit."""
    spec = Registry.load(settings.models_file).lookup(settings.model)
    engine = build_engine(settings, spec)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.close()


@asynccontextmanager
async def bench_app(settings: Settings, engine: Engine, reply_tokens: int) -> AsyncIterator[App]:
    """Hearth on `engine` (started by the caller) and a fresh SQLite file in a temporary
    directory, every reply `reply_tokens` long; the builder opens the store and the gate."""
    with tempfile.TemporaryDirectory(prefix="hearth-bench-") as tmp:
        fresh = settings.model_copy(update={"db_path": Path(tmp) / "bench.sqlite3"})
        builder = HearthBuilder(fresh).engine(engine).sampling(fixed_length(settings, reply_tokens))
        async with builder.build() as app:
            yield app


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
