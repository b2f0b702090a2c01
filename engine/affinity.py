"""Conversation affinity: which replica answers a conversation, so its prefix cache stays warm.

The core names the conversation a request belongs to with `conversation(key)`, around
the call to `Engine.stream`; the key is hashed at once, so no platform id ever reaches
the engine or the wire. The remote engine sends the hash as `X-Session-ID` and as the
OpenAI `user` field (what vLLM's router and production-stack route on), and ranks its
own replicas by rendezvous hashing on it: a conversation stays on its replica, and
moves only while that replica is down.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal

Routing = Literal["affinity", "round-robin"]
SESSION_PERSON = b"hearth-session"  # domain separation: these hashes are never reused elsewhere
SESSION_BYTES = 16

# The hashed key of the conversation being answered in this task, if the caller named one.
_SESSION: ContextVar[str | None] = ContextVar("hearth_session", default=None)


def session_id(key: str) -> str:
    """A stable pseudonym for a conversation key: the same in every Hearth process."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=SESSION_BYTES, person=SESSION_PERSON)
    return digest.hexdigest()


@contextmanager
def conversation(key: str) -> Iterator[str]:
    """Requests made inside belong to conversation `key` (hashed here); yields the hash."""
    session = session_id(key)
    token = _SESSION.set(session)
    try:
        yield session
    finally:
        _SESSION.reset(token)


def current_session() -> str | None:
    """The hashed conversation key the current task runs under, if any."""
    return _SESSION.get()


# The model a channel is pinned to, when it is not the one serving everyone (remote engines).
_MODEL: ContextVar[str | None] = ContextVar("hearth_model", default=None)


@contextmanager
def requested_model(name: str | None) -> Iterator[None]:
    """Requests made inside ask for model `name` (None: the engine's own). An engine that
    cannot serve it (the in-process one serves only what it loaded) uses its own."""
    token = _MODEL.set(name)
    try:
        yield
    finally:
        _MODEL.reset(token)


def current_model() -> str | None:
    """The model the current task asked for, if any."""
    return _MODEL.get()


def rendezvous(session: str, nodes: Sequence[str]) -> list[str]:
    """`nodes` from most to least preferred for `session` (highest random weight first).

    Removing a node moves only the sessions it ranked first, and each to its own
    second choice; adding it back moves exactly those back."""
    return sorted(nodes, key=lambda node: _weight(session, node), reverse=True)


def _weight(session: str, node: str) -> int:
    digest = hashlib.blake2b(f"{session}\0{node}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class Rotation:
    """Round-robin over nodes: each call starts one further along."""

    def __init__(self) -> None:
        self._counter = itertools.count()

    def order(self, nodes: Sequence[str]) -> list[str]:
        if not nodes:
            return []
        start = next(self._counter) % len(nodes)
        return [*nodes[start:], *nodes[:start]]
