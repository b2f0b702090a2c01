"""What counting a prompt hands to the stream of the very same prompt.

The pipeline counts a prompt's tokens (rendering it: a chat template and a
tokeniser, or a server's /tokenize) and then streams the same messages: the work is
kept so that it is done once. The stream takes it, so what is kept is what was
counted and not streamed yet: about one prompt per channel being answered at once,
however many channels that is. (Before, a 256-entry LRU cache missed about half of
the time past 256 channels at once, rendering those prompts twice.) What a count left
untaken (the trimming's earlier tries, a turn refused after its count) goes after
KEEP_S; at most MOST entries are kept in any case, oldest out first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

KEEP_S = 60.0  # an untaken count is kept this long (seconds)
MOST = 16_384  # entries at most, whatever their age (one per channel answering at once)


class Handoff(Generic[K, V]):
    """Counted prompts' work by key, until streamed; safe from any thread."""

    def __init__(self, keep_s: float = KEEP_S, most: int = MOST,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._keep_s = keep_s
        self._most = most
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()  # oldest first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def peek(self, key: K) -> V | None:
        """What was kept for `key` (it stays), or None."""
        with self._lock:
            entry = self._entries.get(key)
            return None if entry is None else entry[1]

    def keep(self, key: K, value: V) -> None:
        """Keep `value` for `key` until taken, KEEP_S at most; drops what is too old or too many."""
        now = self._clock()
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = (now, value)
            while self._entries:
                oldest, _ = next(iter(self._entries.values()))
                if now - oldest <= self._keep_s and len(self._entries) <= self._most:
                    break
                self._entries.popitem(last=False)

    def take(self, key: K) -> V | None:
        """What was kept for `key`, no longer kept; None when nothing was."""
        with self._lock:
            entry = self._entries.pop(key, None)
            return None if entry is None else entry[1]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
