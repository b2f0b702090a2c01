"""Recent history per conversation, kept in memory by the SQLite store so that a turn's
history is not read back from the file it was just written to.

A window is what the store's history query returns for a conversation: its newest
messages in prompt order (turn, then id; see `StoredMessage.turn`), only those the
model may see (`PROMPT_STATUSES`, not flagged, at or after the context floor). It is
filled by a read and then kept true by what this process commits: a stored message is
added where its turn puts it, a status set moves it in or out. Invariant: a window
holds the newest `len(window)` visible messages of its conversation, or (`complete`)
all of them. A write the window cannot follow exactly (a reset, a moved context floor,
a channel moved, messages pruned or forgotten, a status set on a message no window
holds) drops the windows it may touch, and the next read fills them again.

Writes by another process (`hearth forget`, a second process on the file) are seen
through SQLite's `PRAGMA data_version` (https://sqlite.org/pragma.html#pragma_data_version):
the writer reads it at the start of every transaction, and a change drops every
window. A turn stores its message before it reads its history, so that read sees
what another process committed before it, as a read of the file would.

Sized by messages and characters kept in all, least recently used conversation first
out: HISTORY_MESSAGES_KEPT messages, HISTORY_CHARS_KEPT characters of text (about 64
MB of text at most, more for CJK's two bytes a character).
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from bot.messages import PROMPT_STATUSES, ConversationKey, MessageStatus, StoredMessage

HISTORY_MESSAGES_KEPT = 100_000  # messages in all windows together
HISTORY_CHARS_KEPT = 32_000_000  # characters of text in all windows together
NEW_WINDOW = 400  # messages a new conversation's window holds before it keeps only the newest


def _order(message: StoredMessage) -> tuple[int, int]:
    return (message.turn, message.id)


@dataclass(slots=True)
class _Window:
    """One conversation's newest visible messages, in prompt order."""

    size: int  # the most it holds; past it, the oldest are dropped and it is no longer complete
    complete: bool
    messages: list[StoredMessage] = field(default_factory=list)
    order: list[tuple[int, int]] = field(default_factory=list)  # each message's (turn, id)
    chars: int = 0

    def index(self, message_id: int) -> int | None:
        for i in range(len(self.messages) - 1, -1, -1):  # recent messages change most
            if self.messages[i].id == message_id:
                return i
        return None


class HistoryCache:
    """Windows by conversation (see the module docstring). Used on the event loop's
    thread only, but `changed_elsewhere`, which the writer's transaction calls (on the
    writer's thread or the event loop's)."""

    def __init__(
        self, max_messages: int = HISTORY_MESSAGES_KEPT, max_chars: int = HISTORY_CHARS_KEPT,
        new_window: int = NEW_WINDOW,
    ) -> None:
        self._max_messages = max_messages
        self._max_chars = max_chars
        self._new_window = new_window
        self._windows: OrderedDict[ConversationKey, _Window] = OrderedDict()
        self._of: dict[int, ConversationKey] = {}  # message id → the conversation whose window holds it
        self._messages = 0
        self._chars = 0
        self._reading: dict[ConversationKey, int] = {}  # reads in flight, by conversation
        self._stale: set[ConversationKey] = set()  # changed while a read was in flight
        self._elsewhere = 0  # changes by another connection, counted by the writer's transactions
        self._seen_elsewhere = 0
        self._lock = threading.Lock()  # `_elsewhere`: written on the writer's thread too
        self.hits = 0
        self.misses = 0

    def changed_elsewhere(self) -> None:
        """Another connection committed (seen by a writer's transaction): every window is dropped before
        the next use."""
        with self._lock:
            self._elsewhere += 1

    def get(self, key: ConversationKey, limit: int) -> list[StoredMessage] | None:
        """The newest `limit` visible messages in prompt order, or None when the window
        does not hold that many (or there is none): then read, in `reading`."""
        self._sync()
        window = self._windows.get(key)
        if window is None or (not window.complete and len(window.messages) < limit):
            self.misses += 1
            return None
        self._windows.move_to_end(key)
        self.hits += 1
        return window.messages[-limit:] if limit < len(window.messages) else list(window.messages)

    @contextmanager
    def reading(
        self, key: ConversationKey, limit: int
    ) -> Iterator[Callable[[Sequence[StoredMessage]], None]]:
        """Around a read of `key`'s newest `limit` messages: `fill(messages)`, the read's
        result in prompt order, keeps it, unless the conversation changed while it was
        read (then it may be stale)."""
        self._reading[key] = self._reading.get(key, 0) + 1
        try:
            yield functools.partial(self._filled, key, limit)
        finally:
            left = self._reading.pop(key) - 1
            if left:
                self._reading[key] = left
            else:
                self._stale.discard(key)

    def added(self, key: ConversationKey, message: StoredMessage, *, new_conversation: bool,
              question_status: MessageStatus | None = None) -> None:
        """`message` was committed to `key` (its row just inserted; `new_conversation`: the
        conversation's row too, so it held nothing before). `question_status`: the status its
        `reply_to` was given in the same transaction."""
        self._sync()
        self._changed(key)
        if new_conversation and key not in self._windows:
            self._put(key, _Window(self._new_window, complete=True))
        window = self._windows.get(key)
        if window is None:
            return
        if question_status is not None and message.reply_to is not None:
            self._set_status_in(key, window, message.reply_to, question_status)
        if message.status not in PROMPT_STATUSES:
            return
        where = _order(message)
        if not window.complete and window.order and where < window.order[0]:
            return  # older than the window reaches: not among its newest
        if message.reply_to is not None and window.index(message.reply_to) is None:
            self.drop(key)  # its question is not shown: below the context floor, maybe
            return
        i = bisect.bisect(window.order, where)
        window.order.insert(i, where)
        window.messages.insert(i, message)
        window.chars += len(message.text)
        self._of[message.id] = key
        self._messages += 1
        self._chars += len(message.text)
        self._trim(window)
        self._evict()

    def status_set(
        self, message_id: int, status: MessageStatus, platform_message_id: str | None = None
    ) -> None:
        """Message `message_id` was given `status` (and, when given, this platform id where it
        had none). A message no window holds that becomes visible may belong to one: all are
        dropped."""
        self._sync()
        key = self._of.get(message_id)
        if key is None:
            if status in PROMPT_STATUSES:
                self.clear()
            return
        self._changed(key)
        window = self._windows[key]
        self._set_status_in(key, window, message_id, status, platform_message_id)

    def flagged(self, message_id: int) -> None:
        """The moderation gate flagged a user message: the model never sees it again."""
        self._sync()
        key = self._of.get(message_id)
        if key is not None:
            self._changed(key)
            self._remove(self._windows[key], key, message_id)

    def drop(self, key: ConversationKey) -> None:
        """`key` changed in a way its window cannot follow (its context floor, say)."""
        self._changed(key)
        window = self._windows.pop(key, None)
        if window is not None:
            self._forget(window)

    def clear(self) -> None:
        """Drop every window (a write that may touch any conversation)."""
        self._stale.update(self._reading)
        self._windows.clear()
        self._of.clear()
        self._messages = self._chars = 0

    # --- the parts -------------------------------------------------------------

    def _filled(self, key: ConversationKey, limit: int, messages: Sequence[StoredMessage]) -> None:
        self._sync()
        if key in self._stale:
            return
        old = self._windows.pop(key, None)
        if old is not None:
            self._forget(old)
        window = _Window(limit, complete=len(messages) < limit)
        for message in messages:
            window.messages.append(message)
            window.order.append(_order(message))
            window.chars += len(message.text)
            self._of[message.id] = key
        self._messages += len(messages)
        self._chars += window.chars
        self._put(key, window)
        self._evict()

    def _set_status_in(self, key: ConversationKey, window: _Window, message_id: int, status: MessageStatus,
                       platform_message_id: str | None = None) -> None:
        i = window.index(message_id)
        if i is None:
            if status in PROMPT_STATUSES:
                self.drop(key)  # a message the window left out may show now
            return
        if status not in PROMPT_STATUSES:
            self._remove(window, key, message_id)
            return
        old = window.messages[i]
        shown_as = old.platform_message_id if old.platform_message_id is not None else platform_message_id
        window.messages[i] = dataclasses.replace(old, status=status, platform_message_id=shown_as)

    def _remove(self, window: _Window, key: ConversationKey, message_id: int) -> None:
        i = window.index(message_id)
        if i is None:
            return
        gone = window.messages.pop(i)
        del window.order[i]
        window.chars -= len(gone.text)
        self._messages -= 1
        self._chars -= len(gone.text)
        self._of.pop(message_id, None)

    def _trim(self, window: _Window) -> None:
        while len(window.messages) > window.size:
            gone = window.messages.pop(0)
            del window.order[0]
            window.chars -= len(gone.text)
            self._messages -= 1
            self._chars -= len(gone.text)
            self._of.pop(gone.id, None)
            window.complete = False

    def _put(self, key: ConversationKey, window: _Window) -> None:
        self._windows[key] = window
        self._windows.move_to_end(key)

    def _evict(self) -> None:
        while self._windows and (self._messages > self._max_messages or self._chars > self._max_chars):
            _, window = self._windows.popitem(last=False)
            self._forget(window)

    def _forget(self, window: _Window) -> None:
        for message in window.messages:
            self._of.pop(message.id, None)
        self._messages -= len(window.messages)
        self._chars -= window.chars

    def _changed(self, key: ConversationKey) -> None:
        if key in self._reading:
            self._stale.add(key)

    def _sync(self) -> None:
        with self._lock:
            elsewhere = self._elsewhere
        if elsewhere != self._seen_elsewhere:
            self._seen_elsewhere = elsewhere
            self.clear()
