"""Intake for platforms that cannot be asked to deliver again, through a journal.

Telegram keeps an update until Hearth confirms it, so while the store fails Hearth
simply does not confirm. Discord (and the terminal) hand a message over once: while
the store fails, `JournalledInbox` appends it to the journal (`bot.store.journal`,
fsynced) instead, says nothing to the user (nothing failed that they should hear of),
and hands it to the pipeline again, in arrival order, once the store takes writes.
While anything waits in the journal, later messages queue behind it, so each
conversation keeps its order. At start-up `replay` finishes what an earlier run left:
messages are stored and answered, and replies shown in full whose record was cut by
a shutdown are committed (so the restart does not answer them again).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from bot.errors import StoreUnavailableError
from bot.messages import ConversationKey, IncomingMessage, Quote
from bot.ports import Inbox, ReplyChannel
from bot.store import Conversations
from bot.store.faults import BACKOFF_S
from bot.store.journal import MESSAGE, REPLY, Entry, Journal
from bot.tasks import TaskOwner

log = logging.getLogger(__name__)


class JournalledInbox:
    """An `Inbox` that never loses a message the store could not take (see the module)."""

    def __init__(self, inbox: Inbox, journal: Journal, conversations: Conversations) -> None:
        self._inbox = inbox
        self._journal = journal
        self._conversations = conversations
        self._channels: dict[int, ReplyChannel] = {}  # entry seq → where to answer it
        self._platforms: dict[str, ReplyChannel] = {}
        self._tasks = TaskOwner("journal")
        self._draining: asyncio.Task[None] | None = None

    async def submit(self, msg: IncomingMessage, channel: ReplyChannel) -> asyncio.Task[None] | None:
        """Store and answer `msg`; while the store fails, journal it (returns None then)."""
        if len(self._journal):  # earlier messages wait: keep the order
            await self._keep(msg, channel)
            return None
        try:
            return await self._inbox.submit(msg, channel)
        except StoreUnavailableError as exc:
            log.warning("message %s in %s journalled: %s", msg.message_id, msg.key, exc.reason)
            await self._keep(msg, channel)
            return None

    async def handle(self, msg: IncomingMessage, channel: ReplyChannel) -> None:
        task = await self.submit(msg, channel)
        if task is not None:
            await asyncio.wait([task])

    async def replay(self, channels: Mapping[str, ReplyChannel]) -> int:
        """At start-up, before recovery: commit the replies an earlier run journalled (so
        recovery does not answer their questions again); how many entries it left. Its
        messages are handed over by `start`, after recovery (which would otherwise claim
        them a second time), on `channels` by platform."""
        self._platforms = dict(channels)
        entries = await self._journal.load()
        for entry in [e for e in entries if e["kind"] == REPLY]:
            await self._commit_reply(entry)
        return len(entries)

    def start(self) -> None:
        """Hand over, in the background, the messages an earlier run journalled."""
        if len(self._journal):
            log.warning("after the restart, journalled messages to store and answer: %d", len(self._journal))
            self._start_draining()

    async def close(self) -> None:
        """Stop handing journalled messages over (they stay journalled for the next start)."""
        await self._tasks.close()

    async def _keep(self, msg: IncomingMessage, channel: ReplyChannel) -> None:
        entry = await self._journal.append(MESSAGE, {"platform": msg.platform, "message": _message_data(msg)})
        self._channels[int(entry["seq"])] = channel
        self._start_draining()

    def _start_draining(self) -> None:
        if self._draining is None or self._draining.done():
            self._draining = self._tasks.spawn(self._drain(), "journal-drain")

    async def _drain(self) -> None:
        """Hand each journalled message over, oldest first, waiting out a failing store."""
        attempt = 0
        while entries := self._journal.entries:
            entry = entries[0]
            try:
                await self._hand_over(entry)
            except StoreUnavailableError:
                await asyncio.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
                attempt += 1
                continue
            attempt = 0
            self._channels.pop(int(entry["seq"]), None)
            await self._journal.done(entry)
        log.info("the journal is empty: every journalled message is stored")

    async def _hand_over(self, entry: Entry) -> None:
        if entry["kind"] == REPLY:
            await self._commit_reply(entry)
            return
        msg = _message_from(entry["message"])
        channel = self._channels.get(int(entry["seq"])) or self._platforms.get(entry["platform"])
        if channel is not None:
            await self._inbox.submit(msg, channel)
            return
        # Its platform does not run now: stored pending, a later start with it answers it.
        log.warning("journalled message %s in %s stored unanswered: %s is not running",
                    msg.message_id, msg.key, entry["platform"])
        await self._conversations.add_message(
            msg.key, "user", msg.turn_text, author_id=msg.author_id, author_name=msg.author_name,
            platform_message_id=msg.message_id,
            meta={"direct": msg.is_direct, "channel_name": msg.channel_name},
        )

    async def _commit_reply(self, entry: Entry) -> None:
        """A reply shown in full before a shutdown, and its question's status, in one go;
        the platform id of its first part keeps a second replay from storing it twice."""
        data = dict(entry["reply"])
        key = ConversationKey(**data.pop("key"))
        await self._conversations.add_message(key, "assistant", data.pop("text"), **data)
        await self._journal.done(entry)


def _message_data(msg: IncomingMessage) -> dict[str, Any]:
    return dataclasses.asdict(msg)


def _message_from(data: Mapping[str, Any]) -> IncomingMessage:
    fields = dict(data)
    quote = fields.pop("quote", None)
    return IncomingMessage(
        key=ConversationKey(**fields.pop("key")), quote=Quote(**quote) if quote else None,
        media=tuple(fields.pop("media", ())), **fields,
    )
