"""`hearth bench store`: SQLite at a million messages.

The data set is built in Hearth's own schema (a `SqliteStore` creates and
migrates the file), with one `executemany` per batch straight through sqlite3:
a million `add_message` calls would take most of the benchmark's time budget.
The Store API's own insert rate is measured on a sample, and every context load
goes through `SqliteStore.history`, as the pipeline calls it.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.stats import percentile
from bench.workload import TEXTS
from bot.messages import ConversationKey
from bot.store import SqliteStore

DEFAULT_MESSAGES = 1_000_000
DEFAULT_CONVERSATIONS = 10_000
MESSAGES_PER_CONVERSATION = DEFAULT_MESSAGES // DEFAULT_CONVERSATIONS
DEFAULT_LOADS = 2000
DEFAULT_API_SAMPLE = 2000
CONTEXT_MESSAGES = 200
BATCH = 20_000
PLATFORM = "bench"
SEED = 6

INSERT_CONVERSATION = """
    INSERT INTO conversations (id, platform, channel, thread, created_at) VALUES (?, ?, ?, '', ?)
"""
INSERT_MESSAGE = """
    INSERT INTO messages (id, conversation_id, role, author_id, author_name, text, created_at,
        platform_message_id, prompt_tokens, cached_tokens, reply_tokens, reply_to)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


@dataclass(frozen=True, slots=True)
class StorePlan:
    messages: int = DEFAULT_MESSAGES
    conversations: int = DEFAULT_CONVERSATIONS
    loads: int = DEFAULT_LOADS
    api_sample: int = DEFAULT_API_SAMPLE


def conversations_for(messages: int) -> int:
    """The default's proportion (100 messages each), for a data set of another size."""
    return max(1, messages // MESSAGES_PER_CONVERSATION)


@dataclass(frozen=True, slots=True)
class StoreResult:
    messages: int
    conversations: int
    build_seconds: float
    api_inserts: int
    api_seconds: float
    file_mb: float
    context_messages: int
    load_latencies: tuple[float, ...]

    @property
    def bulk_insert_rate(self) -> float:
        return self.messages / self.build_seconds if self.build_seconds else 0.0

    @property
    def insert_rate(self) -> float:
        return self.api_inserts / self.api_seconds if self.api_seconds else 0.0

    def to_json(self) -> dict[str, object]:
        loads = self.load_latencies
        return {
            "benchmark": "store",
            "messages": self.messages,
            "conversations": self.conversations,
            "insert_rate": round(self.insert_rate, 1),
            "insert_method": "SqliteStore.add_message, one call (one transaction) per message",
            "bulk_insert_rate": round(self.bulk_insert_rate, 1),
            "bulk_method": f"sqlite3 executemany in batches of {BATCH}, one transaction per batch",
            "file_mb": round(self.file_mb, 1),
            "context_window": CONTEXT_MESSAGES,
            "context_messages_mean": self.context_messages,
            "loads": len(loads),
            "p50_ms": round(percentile(loads, 50) * 1000, 3),
            "p99_ms": round(percentile(loads, 99) * 1000, 3),
        }


async def run_store(plan: StorePlan, directory: Path | None = None) -> StoreResult:
    """Build the data set in a temporary file (or `directory`), then measure."""
    with tempfile.TemporaryDirectory(prefix="hearth-bench-store-", dir=directory) as tmp:
        path = Path(tmp) / "store.sqlite3"
        async with SqliteStore(path):  # creates the file in Hearth's current schema
            pass
        build = await asyncio.to_thread(build_dataset, path, plan.messages, plan.conversations)
        async with SqliteStore(path) as store:
            api_inserts, api_seconds = await _api_inserts(store, plan.api_sample)
            latencies, sizes = await _context_loads(store, plan)
        return StoreResult(
            plan.messages, plan.conversations, build, api_inserts, api_seconds,
            path.stat().st_size / (1 << 20), round(sum(sizes) / max(1, len(sizes))), tuple(latencies),
        )


def build_dataset(path: Path, messages: int, conversations: int) -> float:
    """Insert `messages` messages round-robin over `conversations` conversations; seconds taken.

    Turns interleave across conversations as they would in a busy server, so a
    conversation's rows are scattered through the file, not laid out together.
    """
    start = time.perf_counter()
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("BEGIN")
        rows = [(c + 1, PLATFORM, _channel(c), 0.0) for c in range(conversations)]
        db.executemany(INSERT_CONVERSATION, rows)
        for batch in _batches(_rows(messages, conversations)):
            db.executemany(INSERT_MESSAGE, batch)
            db.execute("COMMIT")
            db.execute("BEGIN")
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return time.perf_counter() - start


def _rows(messages: int, conversations: int) -> Iterator[tuple[object, ...]]:
    """User/assistant pairs; each round visits every conversation in a shuffled order."""
    rng = random.Random(SEED)
    order = list(range(conversations))
    message_id, now = 0, 1.7e9
    while message_id < messages:
        rng.shuffle(order)
        for c in order:
            for role in ("user", "assistant"):
                if message_id >= messages:
                    return
                message_id += 1
                now += 0.01
                yield _row(message_id, c, role, now, rng)


def _row(message_id: int, c: int, role: str, now: float, rng: random.Random) -> tuple[object, ...]:
    text = TEXTS[rng.randrange(len(TEXTS))]
    if role == "user":
        return (message_id, c + 1, role, f"u{c}", f"user{c}", text, now, f"p{message_id}", 0, 0, 0, None)
    return (message_id, c + 1, role, "bot", "Hearth", text * 2, now, f"p{message_id}", 900, 768, 64,
            message_id - 1)


def _batches(rows: Iterator[tuple[object, ...]]) -> Iterator[list[tuple[object, ...]]]:
    batch: list[tuple[object, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def _api_inserts(store: SqliteStore, count: int) -> tuple[int, float]:
    """`count` messages through the Store API into a separate conversation."""
    key = ConversationKey(PLATFORM, "api-sample")
    start = time.perf_counter()
    for n in range(count):
        text = TEXTS[n % len(TEXTS)]
        await store.add_message(key, "user", text, author_id="u", platform_message_id=f"a{n}")
    return count, time.perf_counter() - start


async def _context_loads(store: SqliteStore, plan: StorePlan) -> tuple[list[float], list[int]]:
    """`store.history(key, 200)` for random conversations: (seconds per load, messages per load)."""
    rng = random.Random(SEED + 1)
    latencies: list[float] = []
    sizes: list[int] = []
    for _ in range(plan.loads):
        key = ConversationKey(PLATFORM, _channel(rng.randrange(plan.conversations)))
        start = time.perf_counter()
        history = await store.history(key, CONTEXT_MESSAGES)
        latencies.append(time.perf_counter() - start)
        sizes.append(len(history))
    return latencies, sizes


def _channel(c: int) -> str:
    return f"store-c{c}"
