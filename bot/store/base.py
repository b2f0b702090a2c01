"""The storage contract. Every implementation passes the same tests."""

from __future__ import annotations

from typing import Protocol

from bot.messages import ConversationKey, Role, StoredMessage, Verdict, WordRule


class Store(Protocol):
    """Conversations, messages, settings and moderation verdicts.

    Implementations are async context managers; `open` and `close` are idempotent.
    No two tasks ever share a transaction.
    """

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def add_message(
        self,
        key: ConversationKey,
        role: Role,
        text: str,
        *,
        author_id: str = "",
        author_name: str = "",
        platform_message_id: str | None = None,
        prompt_tokens: int = 0,
        cached_tokens: int = 0,
        reply_tokens: int = 0,
        reply_to: int | None = None,
    ) -> int | None:
        """Store one message; return its id, or None when `platform_message_id`
        was already stored in this conversation (a duplicate delivery).

        `reply_to` names the user message an assistant reply answers: history
        orders a reply right after it, even when other messages arrived between."""
        ...

    async def history(self, key: ConversationKey, limit: int = 200) -> list[StoredMessage]:
        """The newest `limit` messages whose turn is at or after the context floor,
        ordered by turn (see `StoredMessage.turn`), then id. User messages that the
        moderation gate flagged are left out: the model never sees them."""
        ...

    async def set_context_floor(self, key: ConversationKey, message_id: int) -> None:
        """Hide messages older than `message_id` from `history` (they stay stored)."""
        ...

    async def reset(self, key: ConversationKey) -> int:
        """Forget a conversation's messages; return how many were deleted."""
        ...

    async def get_channel_persona(self, key: ConversationKey) -> str | None: ...

    async def set_channel_persona(self, key: ConversationKey, persona: str | None) -> None:
        """Set (or with None, reset) the persona override of a channel."""
        ...

    async def get_channel_flag(self, key: ConversationKey, name: str) -> str | None:
        """A per-channel setting (shared by the channel's threads), or None."""
        ...

    async def set_channel_flag(self, key: ConversationKey, name: str, value: str | None) -> None:
        """Set (or with None, clear) a per-channel setting."""
        ...

    async def add_word(self, rule: WordRule) -> None:
        """Add or replace an admin's moderation word in its scope."""
        ...

    async def remove_word(self, scope: str, word: str) -> bool:
        """Remove a moderation word; False when it was not there."""
        ...

    async def words(self) -> list[WordRule]:
        """Every admin moderation word, in insertion order."""
        ...

    async def get_setting(self, name: str) -> str | None: ...

    async def set_setting(self, name: str, value: str) -> None: ...

    async def add_verdict(
        self,
        key: ConversationKey,
        message_id: int | None,
        direction: str,
        verdict: Verdict,
    ) -> int: ...

    async def verdicts(self, key: ConversationKey) -> list[tuple[int | None, str, Verdict]]:
        """(message_id, direction, verdict) for a conversation, oldest first."""
        ...

    async def message_count(self) -> int: ...
