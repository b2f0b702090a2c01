"""Platform-neutral values that flow through Hearth's core.

`ChatMessage` and `Role` are the engine's (`engine.types`): a prompt is the
engine's vocabulary; everything here is the bot's.
"""

from __future__ import annotations

import dataclasses
import operator
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Literal

from bot.splitting import truncate
from engine.types import Role

# How much of the message a message replies to is given to the model with it: enough to
# know what "translate this" or "is this true?" points at, bounded so a reply to a long
# post does not fill the context (characters, cut on a grapheme boundary).
MAX_QUOTE_CHARS = 400
MAX_QUOTE_NAME_CHARS = 64
LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


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
class Quote:
    """The message another one replies to, as its platform showed it: who wrote it and
    its text (a caption counts as text; empty when it had none)."""

    author_name: str
    text: str

    def render(self) -> str:
        """`> Bob wrote:` and the text as quoted lines, cut to MAX_QUOTE_CHARS (`…` marks a cut)."""
        name = LINE_BREAKS.sub(" ", self.author_name).strip()[:MAX_QUOTE_NAME_CHARS] or "someone"
        text = truncate(self.text.strip(), MAX_QUOTE_CHARS)
        if text != self.text.strip():
            text += "…"
        lines = [f"> {line}" for line in (text or "(no text)").splitlines()]
        return "\n".join([f"> {name} wrote:", *lines])


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """One platform message, normalised at the adapter's edge.

    `text` is what its author wrote (a caption counts); `quote`, the message it replies to
    (not Hearth's own: that one is in the history already); `media`, what came with it that
    the model cannot see ("photo", "video", "voice", "sticker", "file"…); `language`, the
    author's app language where the platform says (Telegram's `language_code`, Discord's
    interaction locale), for Hearth's own words when the text does not tell."""

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
    quote: Quote | None = None
    media: tuple[str, ...] = ()
    language: str = ""

    @property
    def platform(self) -> str:
        return self.key.platform

    @property
    def turn_text(self) -> str:
        """What is stored, judged by the gate and given to the model for this message: the
        quoted message (`Quote.render`), a note of the media the model cannot see, then the
        author's own text. Just `text` for a plain message."""
        parts = [self.quote.render()] if self.quote is not None else []
        if self.media:
            parts.append(f"[{', '.join(self.media)} attached: you cannot see it, only this text]")
        if self.text or not parts:
            parts.append(self.text)
        return "\n".join(parts)

    @property
    def only_unseen(self) -> bool:
        """Media and no words: nothing the model could answer (the author is told so)."""
        return bool(self.media) and not self.text.strip()

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
# `unseen`: it held only media the model cannot see (a photo without a caption): its author
# was told so, the model never called.
# Only answered, merged and undelivered turns and the message being answered enter prompts.
MessageStatus = Literal[
    "pending", "answered", "refused", "failed", "skipped", "interrupted", "limited", "merged", "dropped",
    "undelivered", "denied", "unseen",
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

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> StoredMessage:
        """A message from a row of every field, in order (as the stores select them). A
        frozen dataclass's __init__ sets each field through `object.__setattr__`: 4 µs a
        message, for every message of the history every turn; each slot set directly is
        3 times faster. ValueError when the row has not one value per field."""
        if len(row) != len(_STORED_SLOTS):
            raise ValueError(f"a stored message has {len(_STORED_SLOTS)} fields, the row {len(row)}")
        message = object.__new__(cls)
        deque(map(operator.call, _STORED_SLOTS, repeat(message), row), maxlen=0)  # set_slot(message, value)
        return message



# The slots' own setters, in field order: they store a value without the class's __setattr__.
_STORED_SLOTS = tuple(getattr(StoredMessage, f.name).__set__ for f in dataclasses.fields(StoredMessage))

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
