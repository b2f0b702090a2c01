"""What every platform adapter is to the runner: something that runs until stopped.

Adapters also implement the core's `bot.ports.ReplyChannel` (send, edit, delete)
and are handed the core's ports (`Inbox`, `Commands`, `ChannelModes`); they
never receive the app and never subclass the core.
"""

from __future__ import annotations

from typing import Protocol

from bot.ports import ReplyChannel, ReplyLimits

__all__ = ["Platform", "ReplyLimits"]


class Platform(ReplyChannel, Protocol):
    """A chat platform Hearth serves: it runs, stops, and carries replies (`ReplyChannel`)."""

    @property
    def platform(self) -> str: ...

    async def run(self) -> None:
        """Serve until stopped (or, for the terminal, until end of input)."""
        ...

    async def stop(self) -> None:
        """Stop serving; idempotent."""
        ...

    async def notify(self, user_id: str, text: str) -> None:
        """Send `text` to one person directly (an operator: HEARTH_ADMIN_IDS), e.g. that
        the engine died. Raises `bot.errors.DeliveryError` when the platform refuses."""
        ...
