"""What a stored message costs on disk, and how big the SQLite WAL gets while writing.

    python scripts/store_sizes.py [MESSAGES]    (default 20,000; run from the repository root)

Writes MESSAGES answered messages through `SqliteStore` as the pipeline does: a user
message, an input verdict, the reply (with its question's "answered" in the same
transaction), an output verdict and the author's usage row for the day. Verdicts have
the layered gate's shape (`bot.moderation.gate.verdict`: every category, the classifier's
score). While writing, the WAL's size is sampled every 20 ms; the largest is reported.
Then the store closes and the file's bytes per answered message are reported, in all
and per table (SQLite's dbstat: each table with its indexes).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import sqlite3
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

from bench.workload import TEXTS
from bot.messages import ConversationKey, Usage
from bot.moderation.gate import verdict
from bot.store import SqliteStore
from bot.store.sqlite_wal import wal_size

CHANNELS = 50
AUTHORS = 200
REPLY = ("Here is a friendly answer of a few sentences, about as long as a chat reply "
         "usually is once the model has said what it wanted to say. ") * 3
SAMPLE_S = 0.02
TABLES = {"messages": "messages", "verdicts": "verdicts", "usage": "usage"}


async def write(store: SqliteStore, count: int, rng: random.Random) -> None:
    """`count` answered messages, as the pipeline stores them."""
    day = dt.datetime.now(dt.UTC).date().isoformat()
    for n in range(count):
        key = ConversationKey("telegram", str(-1000 - n % CHANNELS))
        author = str(n % AUTHORS)
        question = await store.add_message(key, "user", TEXTS[n % len(TEXTS)], author_id=author,
                                           author_name=f"Person {author}", platform_message_id=str(n))
        assert question is not None
        score = {"harassment": rng.uniform(0.0, 0.2)}
        await store.add_verdict(key, question, "input", verdict("classifier", score, False))
        reply = await store.add_message(key, "assistant", REPLY, reply_to=question, prompt_tokens=900,
                                        cached_tokens=800, reply_tokens=90, question_status="answered")
        await store.add_verdict(key, reply, "output", verdict("classifier", {"harassment": 0.01}, False))
        await store.add_usage([Usage(day, key.platform, key.channel, author, f"Person {author}", 1, 0,
                                     900, 800, 90)])


def largest_wal(wal: Path, done: threading.Event) -> int:
    """The WAL's largest size in bytes until `done` (on a thread of its own: the store
    commits small writes on the event loop's thread without yielding to it)."""
    largest = 0
    while not done.is_set():
        largest = max(largest, wal_size(wal))
        done.wait(SAMPLE_S)
    return largest


async def measure(path: Path, count: int) -> tuple[float, int]:
    """(seconds writing, largest WAL in bytes)."""
    done = threading.Event()
    async with SqliteStore(path) as store:
        with ThreadPoolExecutor(1) as pool:
            sampler = pool.submit(largest_wal, path.with_name(path.name + "-wal"), done)
            started = time.monotonic()
            await write(store, count, random.Random(6))
            seconds = time.monotonic() - started
            done.set()
            wal = sampler.result()
    return seconds, wal


def per_table(path: Path) -> dict[str, int]:
    """Bytes of each table's pages and its indexes' pages (dbstat)."""
    with closing(sqlite3.connect(path)) as db:
        owners = dict(db.execute("SELECT name, tbl_name FROM sqlite_schema WHERE type IN ('table', 'index')"))
        sizes: dict[str, int] = {}
        for name, size in db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
            table = owners.get(name, name)
            sizes[table] = sizes.get(table, 0) + int(size)
    return sizes


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hearth.sqlite3"
        seconds, wal = asyncio.run(measure(path, count))
        total = path.stat().st_size
        sizes = per_table(path)
    print(f"{count} answered messages in {seconds:.1f} s ({count / seconds:.0f}/s)")
    print(f"largest WAL while writing: {wal / 2**20:.1f} MiB")
    print(f"file: {total / 2**20:.1f} MiB, {total / count:.0f} bytes per answered message")
    for table in TABLES:
        print(f"  {table}: {sizes.get(table, 0) / count:.0f} bytes per answered message")


if __name__ == "__main__":
    main()
