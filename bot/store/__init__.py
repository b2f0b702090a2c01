"""Persistence behind one async interface, with SQLite and in-memory implementations."""

from bot.store.base import Store
from bot.store.memory import MemoryStore
from bot.store.sqlite import SqliteStore

__all__ = ["MemoryStore", "SqliteStore", "Store"]
