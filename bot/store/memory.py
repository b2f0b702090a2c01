"""The in-memory store: plain dicts and lists with SqliteStore's behaviour, for tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Self, TypeVar

from bot.messages import (
    PROMPT_STATUSES,
    ConversationKey,
    MessageStatus,
    PendingMessage,
    StoredMessage,
    Undelivered,
    Usage,
    Verdict,
    WordRule,
    default_status,
)
from bot.store.base import Forgotten, Lease
from bot.store.faults import StoreHealth
from bot.store.rows import check_role, compact_verdict, moved_platform_id, word_scope
from engine.types import Role

K = TypeVar("K", bound=tuple[str, ...])
KEPT_STATUSES = frozenset({"pending", "undelivered"})  # never pruned: still to answer or deliver
V = TypeVar("V")


@dataclass(slots=True)
class _Conversation:
    messages: list[StoredMessage] = field(default_factory=list)
    context_floor: int = 0


@dataclass(frozen=True, slots=True)
class _VerdictRow:
    key: ConversationKey
    message_id: int | None
    direction: str
    verdict: Verdict
    created_at: float = field(default_factory=time.time)


class MemoryStore:
    """The `Store` in plain dicts and lists; it lasts as long as the object.

    Nothing here awaits, so every method runs whole before another task's starts:
    no lock is needed. Ids count up and are never reused, as in SQLite.
    """

    def __init__(self) -> None:
        self._is_open = False
        self._conversations: dict[ConversationKey, _Conversation] = {}
        self._personas: dict[tuple[str, str], str] = {}
        self._flags: dict[tuple[str, str, str], str] = {}
        self._words: dict[tuple[str, str], WordRule] = {}
        self._settings: dict[str, str] = {}
        self._verdicts: list[_VerdictRow] = []
        self._last_message_id = 0
        self._meta: dict[int, dict[str, object]] = {}
        self._owners: dict[int, str] = {}  # message id → the owner that claimed it
        self._usage: dict[tuple[str, str, str, str], Usage] = {}  # (day, platform, channel, author)
        self._pruned_verdicts = 0  # verdict ids go on counting past the pruned ones
        self._flagged: set[int] = set()  # messages a flagged input verdict kept out of history
        self._leases: dict[str, Lease] = {}
        self.health = StoreHealth()  # never fails: memory is always there

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Make the store usable; a no-op when already open."""
        self._is_open = True

    async def close(self) -> None:
        """Make the store unusable until opened again (the data stays)."""
        self._is_open = False

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
        orders a reply right after it, even when other messages arrived between."""
        check_role(role)
        conversation = self._conversation(key)
        if _has_platform_id(conversation, platform_message_id):
            return None
        self._last_message_id += 1
        conversation.messages.append(StoredMessage(
            self._last_message_id, role, author_id, author_name, text, time.time(),
            platform_message_id, prompt_tokens, cached_tokens, reply_tokens, reply_to,
            status or default_status(role),
        ))
        self._meta[self._last_message_id] = dict(meta or {})
        if owner is not None:
            self._owners[self._last_message_id] = owner
        if question_status is not None and reply_to is not None:
            await self.set_status(reply_to, question_status)
        return self._last_message_id

    async def set_status(self, message_id: int, status: MessageStatus) -> None:
        """Record how a message ended (see `MessageStatus`); nothing when it was deleted."""
        for conversation in self._conversations.values():
            for index, message in enumerate(conversation.messages):
                if message.id == message_id:
                    conversation.messages[index] = replace(message, status=status)

    async def note_shown(self, message_id: int, platform_ids: Sequence[str]) -> None:
        """Remember which platform messages show the reply to `message_id` while it streams."""
        if message_id in self._meta:
            self._meta[message_id]["shown"] = list(platform_ids)

    async def pending(self, since: float) -> list[PendingMessage]:
        """User messages still `pending` that arrived at or after `since` (Unix time), oldest first."""
        found = [
            (key, m) for key, c in self._conversations.items() for m in c.messages
            if m.role == "user" and m.status == "pending" and m.created_at >= since
        ]
        return [self._pending(key, m) for key, m in sorted(found, key=lambda pair: pair[1].id)]

    async def claim_pending(self, since: float, owner: str) -> list[PendingMessage]:
        """Claim for `owner` the `pending` user messages at or after `since` that no
        other owner holds, oldest first. `pending` never suspends, so this is atomic."""
        self._check_open()
        # setdefault claims an unclaimed message and keeps an existing claim.
        return [p for p in await self.pending(since) if self._owners.setdefault(p.id, owner) == owner]

    async def undelivered(self, since: float, owner: str) -> list[Undelivered]:
        """`undelivered` replies of `owner` at or after `since`, oldest first."""
        found = sorted(
            ((key, m) for key, c in self._conversations.items() for m in c.messages
             if m.status == "undelivered" and m.created_at >= since and self._owners.get(m.id) == owner),
            key=lambda pair: pair[1].id,
        )
        return [self._undelivered(key, m) for key, m in found]

    async def expire_undelivered(self, before: float) -> int:
        """Mark `undelivered` replies older than `before` `skipped`; how many."""
        stale = [m.id for c in self._conversations.values() for m in c.messages
                 if m.status == "undelivered" and m.created_at < before]
        for message_id in stale:
            await self.set_status(message_id, "skipped")
        return len(stale)

    async def mark_delivered(self, message_id: int, platform_message_id: str) -> None:
        """An `undelivered` reply is `answered` now, with its first part's id unless it had one."""
        for conversation in self._conversations.values():
            for index, message in enumerate(conversation.messages):
                if message.id == message_id and message.status == "undelivered":
                    conversation.messages[index] = replace(
                        message, status="answered",
                        platform_message_id=message.platform_message_id or platform_message_id,
                    )

    def _undelivered(self, key: ConversationKey, message: StoredMessage) -> Undelivered:
        meta = self._meta.get(message.id, {})
        question = self._find(message.reply_to) if message.reply_to is not None else None
        shown = meta.get("shown", ())
        return Undelivered(
            message.id, key, str(meta.get("deliver", message.text)),
            tuple(str(i) for i in shown) if isinstance(shown, list | tuple) else (),
            question.platform_message_id if question is not None else None, message.created_at,
        )

    def _find(self, message_id: int) -> StoredMessage | None:
        return next((m for c in self._conversations.values() for m in c.messages if m.id == message_id), None)

    async def skip_pending(self, before: float) -> int:
        """Mark `pending` user messages older than `before` (Unix time) `skipped`; how many."""
        stale = [
            m.id for c in self._conversations.values() for m in c.messages
            if m.status == "pending" and m.created_at < before
        ]
        for message_id in stale:
            await self.set_status(message_id, "skipped")
        return len(stale)

    def _pending(self, key: ConversationKey, message: StoredMessage) -> PendingMessage:
        meta = self._meta.get(message.id, {})
        return PendingMessage(
            message.id, key, message.author_id, message.author_name, message.text,
            message.platform_message_id, message.created_at, bool(meta.get("direct", False)),
            str(meta.get("channel_name", "")), tuple(str(i) for i in _ids(meta.get("shown"))),
        )

    async def history(self, key: ConversationKey, limit: int = 200) -> list[StoredMessage]:
        """The newest `limit` messages whose turn is at or after the context floor,
        ordered by turn (see `StoredMessage.turn`), then id. User messages that the
        moderation gate flagged are left out: the model never sees them."""
        conversation = self._existing(key)
        if conversation is None or limit <= 0:
            return []
        floor = conversation.context_floor
        kept = [
            m for m in conversation.messages
            if m.turn >= floor and m.id not in self._flagged and m.status in PROMPT_STATUSES
        ]
        return sorted(kept, key=lambda m: (m.turn, m.id))[-limit:]

    async def set_context_floor(self, key: ConversationKey, message_id: int) -> None:
        """Hide messages older than `message_id` from `history` (they stay stored)."""
        self._conversation(key).context_floor = message_id

    async def reset(self, key: ConversationKey) -> int:
        """Forget a conversation's messages and its context floor; return how many
        messages were deleted. Its verdicts stay, detached from the messages."""
        conversation = self._existing(key)
        if conversation is None:
            return 0
        deleted = {message.id for message in conversation.messages}
        conversation.messages.clear()
        conversation.context_floor = 0
        self._verdicts = [_detach(row, deleted) for row in self._verdicts]
        return len(deleted)

    async def get_channel_persona(self, key: ConversationKey) -> str | None:
        """The persona override of the key's channel (shared by all its threads)."""
        self._check_open()
        return self._personas.get((key.platform, key.channel))

    async def set_channel_persona(self, key: ConversationKey, persona: str | None) -> None:
        """Set (or with None, reset) the persona override of a channel."""
        self._check_open()
        if persona is None:
            self._personas.pop((key.platform, key.channel), None)
        else:
            self._personas[(key.platform, key.channel)] = persona

    async def get_channel_flag(self, key: ConversationKey, name: str) -> str | None:
        """A per-channel setting (shared by the channel's threads), or None."""
        self._check_open()
        return self._flags.get((key.platform, key.channel, name))

    async def set_channel_flag(self, key: ConversationKey, name: str, value: str | None) -> None:
        """Set (or with None, clear) a per-channel setting."""
        self._check_open()
        if value is None:
            self._flags.pop((key.platform, key.channel, name), None)
        else:
            self._flags[(key.platform, key.channel, name)] = value

    async def move_channel(self, platform: str, old_channel: str, new_channel: str) -> bool:
        """Move a channel's conversations, persona, flags and words to its new id, merging
        into what the new id has (see `ChannelSettings.move_channel`). Nothing here awaits:
        it happens whole."""
        self._check_open()
        if old_channel == new_channel:
            return False
        moved = [k for k in self._conversations if (k.platform, k.channel) == (platform, old_channel)]
        for key in moved:
            self._move_conversation(key, replace(key, channel=new_channel))
        old, new = (platform, old_channel), (platform, new_channel)
        settings = _rekey(self._personas, lambda k: new if k == old else None)
        settings += _rekey(self._flags, lambda k: (*new, k[2]) if k[:2] == old else None)
        old_scope, new_scope = word_scope(*old), word_scope(*new)
        words = _rekey(self._words, lambda k: (new_scope, k[1]) if k[0] == old_scope else None)
        self._words = {k: replace(rule, scope=k[0]) for k, rule in self._words.items()}
        return bool(moved) or settings + words > 0

    def _move_conversation(self, key: ConversationKey, to: ConversationKey) -> None:
        """One conversation into `to`'s (made when new); its messages' platform ids qualified."""
        old = self._conversations.pop(key)
        target = self._conversations.setdefault(to, _Conversation())
        target.messages = sorted(target.messages + [_moved(m, key.channel) for m in old.messages],
                                 key=lambda m: m.id)
        target.context_floor = max(target.context_floor, old.context_floor)
        self._verdicts = [replace(row, key=to) if row.key == key else row for row in self._verdicts]

    async def add_word(self, rule: WordRule) -> None:
        """Add or replace an admin's moderation word in its scope."""
        self._check_open()
        self._words[(rule.scope, rule.word)] = rule  # a replaced word keeps its place, as in SQLite

    async def remove_word(self, scope: str, word: str) -> bool:
        """Remove a moderation word; False when it was not there."""
        self._check_open()
        return self._words.pop((scope, word), None) is not None

    async def words(self) -> list[WordRule]:
        """Every admin moderation word, in insertion order."""
        self._check_open()
        return list(self._words.values())

    async def get_setting(self, name: str) -> str | None:
        """A global setting, or None when it was never set."""
        self._check_open()
        return self._settings.get(name)

    async def set_setting(self, name: str, value: str) -> None:
        """Create or replace a global setting."""
        self._check_open()
        self._settings[name] = value

    async def add_verdict(
        self,
        key: ConversationKey,
        message_id: int | None,
        direction: str,
        verdict: Verdict,
    ) -> int:
        """Record a moderation verdict, optionally about one stored message; return
        its id. Raises ValueError when `message_id` names no stored message."""
        self._conversation(key)
        if message_id is not None and not self._has_message(message_id):
            raise ValueError(f"no stored message has id {message_id}")
        self._verdicts.append(_VerdictRow(key, message_id, direction, compact_verdict(verdict)))
        if direction == "input" and verdict.flagged and message_id is not None:
            self._flagged.add(message_id)  # as SQL's messages.flagged: it outlives the verdict
        return self._pruned_verdicts + len(self._verdicts)  # ids count on past pruned ones

    async def log_verdict(
        self, key: ConversationKey, message_id: int | None, direction: str, verdict: Verdict
    ) -> None:
        """`add_verdict`, awaited (see `VerdictLog.log_verdict`)."""
        await self.add_verdict(key, message_id, direction, verdict)

    async def verdicts(self, key: ConversationKey) -> list[tuple[int | None, str, Verdict]]:
        """(message_id, direction, verdict) for a conversation, oldest first."""
        self._check_open()
        rows = [row for row in self._verdicts if row.key == key]
        return [(row.message_id, row.direction, _copy(row.verdict)) for row in rows]

    async def add_usage(self, rows: Sequence[Usage]) -> None:
        """Add each row's counts to the stored ones (nothing awaits: all or nothing)."""
        self._check_open()
        for row in rows:
            key = (row.day, row.platform, row.channel, row.author_id)
            self._usage[key] = _add_usage(self._usage.get(key), row)

    async def usage(
        self, since: str, *, platform: str | None = None, channel: str | None = None,
        author_id: str | None = None,
    ) -> list[Usage]:
        """Rows of day `since` and later matching the filters, by day, platform, channel, author."""
        self._check_open()
        wanted = {1: platform, 2: channel, 3: author_id}
        return [
            row for key, row in sorted(self._usage.items())
            if key[0] >= since and all(value is None or key[i] == value for i, value in wanted.items())
        ]

    async def recent_conversations(
        self, platform: str, since: float, limit: int = 100
    ) -> list[tuple[ConversationKey, str | None]]:
        """Conversations with a user message since `since`, most recently active first, each
        with its newest user message's platform id (see `RecentActivity`)."""
        self._check_open()
        newest = {}
        for key, conversation in self._conversations.items():
            recent = [m for m in conversation.messages if m.role == "user" and m.created_at >= since]
            if key.platform == platform and recent:
                newest[key] = max(recent, key=lambda m: m.id)
        ordered = sorted(newest.items(), key=lambda item: item[1].id, reverse=True)[:max(limit, 0)]
        return [(key, message.platform_message_id) for key, message in ordered]

    async def channels_with_flag(self, platform: str, name: str) -> list[str]:
        """The channels of `platform` whose flag `name` is set, in channel order."""
        self._check_open()
        return sorted(channel for (p, channel, flag) in self._flags if p == platform and flag == name)

    async def message_count(self) -> int:
        """How many messages are stored, in all conversations."""
        self._check_open()
        return sum(len(c.messages) for c in self._conversations.values())

    async def prune_verdicts(self, before: float, limit: int) -> int:
        """Delete the verdicts recorded before `before` among the `limit` oldest; how many."""
        self._check_open()
        window = self._verdicts[:limit]
        kept = [row for row in window if row.created_at >= before]
        self._verdicts[:limit] = kept
        self._pruned_verdicts += len(window) - len(kept)
        return len(window) - len(kept)

    async def prune_usage(self, before: str, limit: int) -> int:
        """Delete up to `limit` usage rows of days before `before` (`YYYY-MM-DD`); how many."""
        self._check_open()
        old = [key for key in self._usage if key[0] < before][:limit]
        for key in old:
            del self._usage[key]
        return len(old)

    async def prune_messages(self, before: float, limit: int) -> int:
        """Delete the messages older than `before` among the `limit` oldest not `pending`,
        keeping a question whose reply is younger (see `Retention.prune_messages`); how many."""
        self._check_open()
        stored = [m for c in self._conversations.values() for m in c.messages]
        window = sorted((m for m in stored if m.status not in KEPT_STATUSES), key=lambda m: m.id)[:limit]
        young_turns = {m.turn for m in stored if m.created_at >= before or m.status in KEPT_STATUSES}
        doomed = {m.id for m in window if m.created_at < before and m.id not in young_turns}
        for conversation in self._conversations.values():
            conversation.messages = [m for m in conversation.messages if m.id not in doomed]
        for message_id in doomed:
            self._meta.pop(message_id, None)
            self._owners.pop(message_id, None)
        self._verdicts = [_detach(row, doomed) for row in self._verdicts]
        return len(doomed)

    async def export_messages(
        self, after_id: int, limit: int, *, platform: str | None = None, channel: str | None = None,
        thread: str | None = None,
    ) -> list[tuple[ConversationKey, StoredMessage]]:
        """Up to `limit` messages with ids above `after_id`, by id, with their conversations,
        only those of `platform`, `channel`, `thread` where given (see `OwnerData`)."""
        self._check_open()
        wanted = {"platform": platform, "channel": channel, "thread": thread}
        found = [
            (key, m) for key, c in self._conversations.items() for m in c.messages
            if m.id > after_id and all(v is None or getattr(key, k) == v for k, v in wanted.items())
        ]
        return sorted(found, key=lambda pair: pair[1].id)[:max(limit, 0)]

    async def forget_user(self, platform: str, author_id: str) -> Forgotten:
        """Delete one person's messages, the replies to them, their verdicts and usage rows (see
        `OwnerData.forget_user`); nothing awaits, so it happens whole."""
        self._check_open()
        stored = [(key, m) for key, c in self._conversations.items() for m in c.messages]
        mine = {m.id for key, m in stored if key.platform == platform and m.role == "user"
                and m.author_id == author_id}
        answers = {m.id for _, m in stored if m.role == "assistant" and m.reply_to in mine}
        for conversation in self._conversations.values():
            conversation.messages = [m for m in conversation.messages if m.id not in mine | answers]
        for message_id in mine | answers:
            self._meta.pop(message_id, None)
            self._owners.pop(message_id, None)
        kept = [row for row in self._verdicts if row.message_id not in mine | answers]
        verdicts, self._verdicts = len(self._verdicts) - len(kept), kept
        usage = [k for k in self._usage if (k[1], k[3]) == (platform, author_id)]
        for key in usage:
            del self._usage[key]
        return Forgotten(len(mine), len(answers), verdicts, len(usage))

    async def claim_lease(self, name: str, holder: str, ttl_s: float, *, replacing: str = "") -> Lease:
        """Take or renew lease `name` for `holder` (see `Leases.claim_lease`)."""
        self._check_open()
        now = time.time()
        held = self._leases.get(name)
        if held is None or held.holder in (holder, replacing) or held.expires_at < now:
            self._leases[name] = Lease(name, holder, now + ttl_s)
        return self._leases[name]

    async def release_lease(self, name: str, holder: str) -> None:
        """Give lease `name` up, if `holder` holds it."""
        self._check_open()
        if (held := self._leases.get(name)) is not None and held.holder == holder:
            del self._leases[name]

    def _conversation(self, key: ConversationKey) -> _Conversation:
        """The conversation, created when it is new."""
        self._check_open()
        return self._conversations.setdefault(key, _Conversation())

    def _existing(self, key: ConversationKey) -> _Conversation | None:
        self._check_open()
        return self._conversations.get(key)

    def _has_message(self, message_id: int) -> bool:
        conversations = self._conversations.values()
        return any(m.id == message_id for c in conversations for m in c.messages)

    def _check_open(self) -> None:
        if not self._is_open:
            raise RuntimeError("the store is not open")


def _has_platform_id(conversation: _Conversation, platform_message_id: str | None) -> bool:
    if platform_message_id is None:  # like SQL NULLs, missing ids never collide
        return False
    return any(m.platform_message_id == platform_message_id for m in conversation.messages)


def _moved(message: StoredMessage, old_channel: str) -> StoredMessage:
    platform_id = message.platform_message_id
    if platform_id is None:
        return message
    return replace(message, platform_message_id=moved_platform_id(old_channel, platform_id))


def _rekey(rows: dict[K, V], new_key: Callable[[K], K | None]) -> int:
    """Give each row its `new_key` (None: it stays), in place and keeping the order; a row
    whose new key is taken already is dropped (the one there is newer). How many moved or dropped."""
    changed = 0
    kept: dict[K, V] = {}
    for key, value in rows.items():
        to = new_key(key)
        changed += to is not None
        if to is None:
            kept[key] = value
        elif to not in rows:
            kept[to] = value
    rows.clear()
    rows.update(kept)
    return changed


def _add_usage(stored: Usage | None, row: Usage) -> Usage:
    if stored is None:
        return row
    return replace(
        stored, author_name=row.author_name or stored.author_name,
        messages=stored.messages + row.messages, refused=stored.refused + row.refused,
        prompt_tokens=stored.prompt_tokens + row.prompt_tokens,
        cached_tokens=stored.cached_tokens + row.cached_tokens,
        reply_tokens=stored.reply_tokens + row.reply_tokens,
    )


def _detach(row: _VerdictRow, deleted: set[int]) -> _VerdictRow:
    """Like ON DELETE SET NULL: a verdict outlives the message it judged."""
    return replace(row, message_id=None) if row.message_id in deleted else row


def _copy(verdict: Verdict) -> Verdict:
    """A verdict with its own dicts, so callers cannot edit what is stored."""
    categories = dict(verdict.categories)
    return replace(verdict, categories=categories, category_scores=dict(verdict.category_scores))


def _ids(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []
