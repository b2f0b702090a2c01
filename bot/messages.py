"""Platform-neutral values that flow through Hearth's core.

`ChatMessage` and `Role` are the engine's (`engine.types`): a prompt is the
engine's vocabulary; everything here is the bot's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from engine.types import Role


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """Names one conversation: a channel, a thread inside it, or a direct chat."""

    platform: str
    channel: str
    thread: str = ""

    def __str__(self) -> str:
        suffix = f"/{self.thread}" if self.thread else ""
        return f"{self.platform}:{self.channel}{suffix}"


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """One platform message, normalised at the adapter's edge."""

    key: ConversationKey
    author_id: str
    author_name: str
    text: str
    message_id: str
    addresses_bot: bool = True
    author_is_admin: bool = False
    is_direct: bool = False
    channel_name: str = ""
    server: str = ""  # the Discord server (guild) id, for HEARTH_ACCESS_ALLOW; empty elsewhere

    @property
    def platform(self) -> str:
        return self.key.platform

    @property
    def admin_key(self) -> str:
        """The `platform:id` form used by HEARTH_ADMIN_IDS."""
        return f"{self.key.platform}:{self.author_id}"


# A user message is stored `pending` and ends `answered`, `refused` (the gate flagged it),
# `failed` (an error reply was sent instead), `skipped` (too old to answer after a
# restart), `limited` (over a quota: never queued for the model), `merged` (it waited
# while its author sent more, and one reply answered them together), `dropped` (it
# waited past the bound of merged messages) or stays `pending` (interrupted: answered
# after the next start). A reply is `answered`, `interrupted` when shutdown cut it, or
# `undelivered`: generated in full, but its platform would not take it (5xx, 429, a
# dropped connection: "could not deliver", not "could not answer"); it is delivered
# when the platform is back (then `answered`), or `skipped` past the recovery window.
# `denied`: its author may not talk to Hearth there (HEARTH_ACCESS=allowlist): never answered.
# Only answered, merged and undelivered turns and the message being answered enter prompts.
MessageStatus = Literal[
    "pending", "answered", "refused", "failed", "skipped", "interrupted", "limited", "merged", "dropped",
    "undelivered", "denied",
]
PROMPT_STATUSES = frozenset({"pending", "answered", "merged", "undelivered"})


def default_status(role: Role) -> MessageStatus:
    """A user message waits to be answered; a stored reply is an answer."""
    return "pending" if role == "user" else "answered"


@dataclass(frozen=True, slots=True)
class PendingMessage:
    """A user message stored but not answered yet, with what it takes to answer it later."""

    id: int
    key: ConversationKey
    author_id: str
    author_name: str
    text: str
    platform_message_id: str | None
    created_at: float
    is_direct: bool
    channel_name: str
    shown: tuple[str, ...] = ()  # platform ids of a reply cut by a crash, still on screen

    def incoming(self) -> IncomingMessage:
        """The message as its adapter first delivered it (admin rights are not kept)."""
        return IncomingMessage(
            key=self.key, author_id=self.author_id, author_name=self.author_name, text=self.text,
            message_id=self.platform_message_id or f"stored-{self.id}", is_direct=self.is_direct,
            channel_name=self.channel_name,
        )


@dataclass(frozen=True, slots=True)
class Undelivered:
    """A reply generated in full that its platform did not take (`undelivered`): `text` to
    show, the platform ids of the parts already `shown` (edited, not posted again), and
    the platform id of the message it answers (`reply_to`, quoted by the first part)."""

    id: int
    key: ConversationKey
    text: str
    shown: tuple[str, ...]
    reply_to: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as kept in the store."""

    id: int
    role: Role
    author_id: str
    author_name: str
    text: str
    created_at: float
    platform_message_id: str | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0
    reply_tokens: int = 0
    reply_to: int | None = None
    status: MessageStatus = "answered"

    @property
    def turn(self) -> int:
        """The user message this one belongs to: history is ordered by turn, then id."""
        return self.reply_to if self.reply_to is not None else self.id


@dataclass(frozen=True, slots=True)
class WordRule:
    """An admin's moderation word: blocked or allowed, in a scope ("global" or a channel)."""

    scope: str
    word: str
    action: Literal["block", "allow"]
    category: str = "harassment"


@dataclass(frozen=True, slots=True)
class Verdict:
    """A moderation decision, shaped like OpenAI's moderation result."""

    flagged: bool
    layer: str = "none"
    categories: dict[str, bool] = field(default_factory=dict)
    category_scores: dict[str, float] = field(default_factory=dict)
    action: str = "allow"


@dataclass(frozen=True, slots=True)
class Usage:
    """What one author spent in one channel (`platform`, `channel`: threads count with
    their channel) on one UTC day (`YYYY-MM-DD`): messages taken for answering, messages
    a quota refused, and the tokens of the replies they got."""

    day: str
    platform: str
    channel: str
    author_id: str
    author_name: str = ""
    messages: int = 0
    refused: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    reply_tokens: int = 0

    @property
    def tokens(self) -> int:
        """What a daily token quota counts: prompt tokens the prefix cache did not
        serve (the work prefill really did) plus reply tokens."""
        return self.prompt_tokens - self.cached_tokens + self.reply_tokens
