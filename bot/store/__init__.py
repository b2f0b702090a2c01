"""Persistence behind one async interface, with SQLite and in-memory implementations."""

from bot.store.base import (
    ChannelSettings,
    Conversations,
    GlobalSettings,
    ModerationWords,
    Store,
    VerdictLog,
)
from bot.store.memory import MemoryStore
from bot.store.sqlite import SqliteStore

__all__ = [
    "ChannelSettings", "Conversations", "GlobalSettings", "MemoryStore", "ModerationWords",
    "SqliteStore", "Store", "VerdictLog",
]
