"""Resident memory of the bot process, apart from the engine's own process.

psutil (a product dependency: the lifeline uses it) is imported when a sample is taken.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class MemorySample:
    """RSS in MiB: this process, and its child processes (vLLM's engine core)."""

    bot_rss_mb: float
    children_rss_mb: float


def sample_memory() -> MemorySample:
    import psutil

    me = psutil.Process()
    children = 0
    for child in me.children(recursive=True):
        try:
            children += child.memory_info().rss
        except psutil.Error:  # it exited while we looked
            continue
    return MemorySample(me.memory_info().rss / MIB, children / MIB)
