"""The storage contract, split by role. Every implementation passes the same tests.

Each component is handed only the role it uses (like python-telegram-bot's
persistence split by kind of data): the pipeline `Conversations` and
`VerdictLog`, the persona `ChannelSettings`, `/moderation` `ModerationWords`,
the model choice `GlobalSettings`. `Store` is all of them plus a lifecycle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.messages import (
    ConversationKey,
    MessageStatus,
    PendingMessage,
    StoredMessage,
    Undelivered,
    Usage,
    Verdict,
    WordRule,
)
from bot.store.faults import StoreHealth
from engine.types import Role


class Conversations(Protocol):
    """Messages by conversation, and the start of each conversation's context."""

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
        status: MessageStatus | None = None,
        meta: Mapping[str, object] | None = None,
        owner: str | None = None,
        question_status: MessageStatus | None = None,
    ) -> int | None:
        """Store one message; return its id, or None when `platform_message_id`
        was already stored in this conversation (a duplicate delivery).

        `reply_to` names the user message an assistant reply answers: history
        orders a reply right after it, even when other messages arrived between.
        `status` defaults to `pending` for a user message, `answered` for a reply;
        `meta` (`direct`, `channel_name`) keeps what answering it after a restart needs.
        `owner` stores it already claimed (see `claim_pending`) by the process that
        received it and answers it, so no other process's recovery takes it.
        `question_status` sets the status of the `reply_to` message in the same
        transaction: a reply and its question's "answered" written apart could be cut
        between (shutdown past its grace, kill -9), and a shown, stored answer whose
        question stayed pending was answered again after the restart."""
        ...

    async def set_status(self, message_id: int, status: MessageStatus) -> None:
        """Record how a message ended (see `MessageStatus`)."""
        ...

    async def note_shown(self, message_id: int, platform_ids: Sequence[str]) -> None:
        """Remember which platform messages show the reply to `message_id` while it streams,
        so a reply a crash cut can be found and marked after the restart."""
        ...

    async def pending(self, since: float) -> list[PendingMessage]:
        """User messages still `pending` that arrived at or after `since` (Unix time), oldest first."""
        ...

    async def claim_pending(self, since: float, owner: str) -> list[PendingMessage]:
        """Claim for `owner` the `pending` user messages that arrived at or after `since`
        (Unix time) and that no other owner holds; return them, oldest first.

        Atomic across processes sharing the store: two owners claiming at once never
        both get a message, and each conversation's claimable messages go to one of
        them, so one process answers them in order. A message `owner` itself claimed
        before is claimed again (a restarted process takes back its own), so `owner`
        must be unique among running processes and stable across restarts. Claiming
        leaves the status `pending`: `set_status` ends it as before."""
        ...

    async def skip_pending(self, before: float) -> int:
        """Mark `pending` user messages older than `before` (Unix time) `skipped`; how many."""
        ...

    async def undelivered(self, since: float, owner: str) -> list[Undelivered]:
        """Replies stored `undelivered` by `owner` (see `add_message`) at or after `since`
        (Unix time), oldest first: what a platform failed to take, to be delivered again."""
        ...

    async def expire_undelivered(self, before: float) -> int:
        """Mark `undelivered` replies older than `before` (Unix time) `skipped`; how many."""
        ...

    async def mark_delivered(self, message_id: int, platform_message_id: str) -> None:
        """An `undelivered` reply is shown in full now: it becomes `answered`, with
        `platform_message_id` (its first part) unless it had one already."""
        ...

    async def history(self, key: ConversationKey, limit: int = 200) -> list[StoredMessage]:
        """The newest `limit` messages whose turn is at or after the context floor,
        ordered by turn (see `StoredMessage.turn`), then id. Only `pending` and
        `answered` messages: the model never sees a flagged, failed, skipped or
        interrupted one."""
        ...

    async def set_context_floor(self, key: ConversationKey, message_id: int) -> None:
        """Hide messages older than `message_id` from `history` (they stay stored)."""
        ...

    async def reset(self, key: ConversationKey) -> int:
        """Forget a conversation's messages; return how many were deleted."""
        ...

    async def message_count(self) -> int:
        """How many messages are stored, in all conversations."""
        ...


class ChannelSettings(Protocol):
    """Per-channel settings, shared by the channel's threads."""

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

    async def move_channel(self, platform: str, old_channel: str, new_channel: str) -> bool:
        """Move everything kept about a channel to the id the platform now gives it (a
        Telegram group upgraded to a supergroup), in one transaction: its conversations
        (every thread, with messages, verdicts and context floor), persona, flags and
        moderation words (scope `platform:channel`, as `bot.moderation.gate.scope_of`).

        Rows the new channel has already (a message that arrived there first) are merged:
        a history gains the old messages, the higher context floor holds, and where both
        have a value (persona, flag, word) the new channel's, the more recent, is kept.
        A moved message's platform id is qualified by its old channel (`old/123`), since
        platform ids are unique only within a channel. False, and nothing changes, when
        nothing is stored under `old_channel`: calling it again is a no-op."""
        ...



class ModerationWords(Protocol):
    """Admins' moderation words (blocked or allowed), per scope."""

    async def add_word(self, rule: WordRule) -> None:
        """Add or replace an admin's moderation word in its scope."""
        ...

    async def remove_word(self, scope: str, word: str) -> bool:
        """Remove a moderation word; False when it was not there."""
        ...

    async def words(self) -> list[WordRule]:
        """Every admin moderation word, in insertion order."""
        ...



class GlobalSettings(Protocol):
    """Named values that outlive a restart (the admin's model choice, the canary)."""

    async def get_setting(self, name: str) -> str | None: ...

    async def set_setting(self, name: str, value: str) -> None: ...



class VerdictLog(Protocol):
    """Moderation verdicts, each about a stored message or none."""

    async def add_verdict(
        self,
        key: ConversationKey,
        message_id: int | None,
        direction: str,
        verdict: Verdict,
    ) -> int: ...

    async def log_verdict(
        self, key: ConversationKey, message_id: int | None, direction: str, verdict: Verdict
    ) -> None:
        """`add_verdict` without waiting for the commit where the store can (a derived row
        that no read depends on at once: not a flagged input, which hides its message):
        it is committed with the next write, and a failure is logged, not raised."""
        ...

    async def verdicts(self, key: ConversationKey) -> list[tuple[int | None, str, Verdict]]:
        """(message_id, direction, verdict) for a conversation, oldest first."""
        ...


class UsageLog(Protocol):
    """Daily usage per author and channel: what daily quotas and `/usage` read."""

    async def add_usage(self, rows: Sequence[Usage]) -> None:
        """Add each row's counts to what is stored for its day, channel and author, all in
        one transaction; a non-empty `author_name` replaces the stored one."""
        ...

    async def usage(
        self, since: str, *, platform: str | None = None, channel: str | None = None,
        author_id: str | None = None,
    ) -> list[Usage]:
        """The rows of day `since` (`YYYY-MM-DD`) and later that match every filter given,
        ordered by day, platform, channel, author."""
        ...


class RecentActivity(Protocol):
    """Where people talked lately and which channels answer everything: what a platform
    reads to catch up on messages it may have missed (a Discord gateway gap, a restart)."""

    async def recent_conversations(
        self, platform: str, since: float, limit: int = 100
    ) -> list[tuple[ConversationKey, str | None]]:
        """The `limit` conversations of `platform` most recently written in with a user
        message stored at or after `since` (Unix time), most recent first, each with the
        platform message id of its newest stored user message (None when it has none)."""
        ...

    async def channels_with_flag(self, platform: str, name: str) -> list[str]:
        """The channels of `platform` whose channel flag `name` is set, in channel order."""
        ...


class Retention(Protocol):
    """Deleting old rows a batch at a time (`bot.retention.Pruner` calls it): each call is
    one short transaction, so the write lock is never held long. Ids follow arrival, so
    a call looks at the `limit` oldest rows (lowest ids) only and deletes those old
    enough: fewer than `limit` deleted means nothing older is left (a row stamped out of
    order waits for the row before it). Conversations and their context floors stay."""

    async def prune_verdicts(self, before: float, limit: int) -> int:
        """Delete the verdicts recorded before `before` (Unix time) among the `limit`
        oldest; how many."""
        ...

    async def prune_usage(self, before: str, limit: int) -> int:
        """Delete up to `limit` usage rows of days before `before` (`YYYY-MM-DD`); how many."""
        ...

    async def prune_messages(self, before: float, limit: int) -> int:
        """Delete the messages that arrived before `before` (Unix time) among the `limit`
        oldest that are not `pending` or `undelivered`; how many. Never one of those (still
        to be answered or delivered), nor a question whose reply is younger or kept (history
        never shows a reply without its question).
        Their verdicts stay, detached, as after `reset`."""
        ...


@dataclass(frozen=True, slots=True)
class Forgotten:
    """What `OwnerData.forget_user` deleted: the person's own messages, the replies to
    them, the moderation verdicts about either, and their usage rows."""

    messages: int = 0
    replies: int = 0
    verdicts: int = 0
    usage: int = 0


class OwnerData(Protocol):
    """What the owner takes out (`hearth export`) and what a person may have erased
    (`hearth forget`, `/forget-me`)."""

    async def export_messages(
        self, after_id: int, limit: int, *, platform: str | None = None, channel: str | None = None,
        thread: str | None = None,
    ) -> list[tuple[ConversationKey, StoredMessage]]:
        """Up to `limit` stored messages with ids above `after_id`, lowest id first, each with
        its conversation; only those of `platform`, `channel` and `thread` where given. Every
        status (flagged, skipped and interrupted ones too): the owner's record, not a prompt.
        Called again with the last id seen, it pages through them all."""
        ...

    async def forget_user(self, platform: str, author_id: str) -> Forgotten:
        """Delete everything kept about one person of `platform`, in every conversation and in
        one transaction: the messages they wrote, the replies that answer those (`reply_to`),
        the verdicts about any of these, and their usage rows (which keep their name).
        Messages stored after the call began may stay. Their conversations stay (empty)."""
        ...


@dataclass(frozen=True, slots=True)
class Lease:
    """Who holds a named lease, and until when (Unix time)."""

    name: str
    holder: str
    expires_at: float


class Leases(Protocol):
    """Named leases with an expiry, so that two processes sharing a database cannot both
    act as one (HEARTH_INSTANCE_NAME: see `bot.app.lease`)."""

    async def claim_lease(self, name: str, holder: str, ttl_s: float, *, replacing: str = "") -> Lease:
        """Take or renew lease `name` for `holder` until `ttl_s` seconds from now, when it is
        free, expired, held by `holder` already, or held by `replacing` (a holder the caller
        knows is dead). The lease as it stands afterwards: another holder's when it was not
        taken. Atomic across processes sharing the store."""
        ...

    async def release_lease(self, name: str, holder: str) -> None:
        """Give lease `name` up, if `holder` holds it."""
        ...


class Store(
    Conversations, ChannelSettings, ModerationWords, GlobalSettings, VerdictLog, UsageLog, Retention,
    RecentActivity, OwnerData, Leases, Protocol,
):
    """Every role in one place. Implementations are async context managers;
    `open` and `close` are idempotent. No two tasks ever share a transaction.

    A call the database fails is retried within the caller's patience and then raises
    `bot.errors.StoreUnavailableError` (see `bot.store.faults`); `health` tells whether
    the database is failing now."""

    health: StoreHealth

    async def open(self) -> None: ...

    async def close(self) -> None: ...
