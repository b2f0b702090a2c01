"""The adapter contract: how the core talks to a chat platform.

Adapters turn platform events into `IncomingMessage` values and hand them to the
core; the core answers through `send` and `edit`. Adapters hold a reference to
the core, never subclass it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.messages import ConversationKey
from bot.splitting import Measure


@dataclass(frozen=True, slots=True)
class ReplyLimits:
    """A platform's message length rule and how often a streamed reply may be edited."""

    max_chars: int
    edit_interval: float
    measure: Measure = len


class Adapter(Protocol):
    platform: str
    limits: ReplyLimits

    async def run(self) -> None:
        """Serve until stopped (or, for the terminal, until end of input)."""
        ...

    async def stop(self) -> None:
        """Stop serving; idempotent."""
        ...

    async def send(self, key: ConversationKey, text: str, *, reply_to: str | None = None) -> str:
        """Post a new message and return its platform id."""
        ...

    async def edit(self, key: ConversationKey, message_id: str, text: str) -> None:
        """Replace the text of a message this adapter sent."""
        ...
