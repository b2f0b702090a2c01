"""What every platform adapter is to the runner: something that runs until stopped.

Adapters also implement the core's `bot.ports.ReplyChannel` (send, edit, delete)
and are handed the core's ports (`Inbox`, `Commands`, `ChannelModes`); they
never receive the app and never subclass the core.
"""

from __future__ import annotations

from typing import Protocol

from bot.ports import ReplyLimits

__all__ = ["Platform", "ReplyLimits"]


class Platform(Protocol):
    """A chat platform Hearth serves."""

    @property
    def platform(self) -> str: ...

    async def run(self) -> None:
        """Serve until stopped (or, for the terminal, until end of input)."""
        ...

    async def stop(self) -> None:
        """Stop serving; idempotent."""
        ...
