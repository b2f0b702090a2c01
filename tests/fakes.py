"""Fakes at the seams: a recording platform adapter and a scripted gate."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bot.messages import ConversationKey, IncomingMessage, Verdict
from bot.moderation import Direction
from bot.ports import ReplyLimits


@dataclass
class Sent:
    key: ConversationKey
    message_id: str
    texts: list[str] = field(default_factory=list)
    deleted: bool = False

    @property
    def text(self) -> str:
        return self.texts[-1]


class RecordingAdapter:
    """Keeps every message it was asked to post, with each version of its text."""

    platform = "test"

    def __init__(self, max_chars: int = 2000, edit_interval: float = 0.0) -> None:
        self.limits = ReplyLimits(max_chars=max_chars, edit_interval=edit_interval)
        self.sent: list[Sent] = []
        self.stopped = asyncio.Event()

    async def run(self) -> None:
        await self.stopped.wait()

    async def stop(self) -> None:
        self.stopped.set()

    async def send(self, key: ConversationKey, text: str, *, reply_to: str | None = None) -> str:
        assert len(text) <= self.limits.max_chars, "sent over the platform limit"
        self.sent.append(Sent(key, f"m{len(self.sent) + 1}", [text]))
        return self.sent[-1].message_id

    async def edit(self, key: ConversationKey, message_id: str, text: str) -> None:
        assert len(text) <= self.limits.max_chars, "edited over the platform limit"
        sent = next(s for s in self.sent if s.message_id == message_id)
        assert sent.texts[-1] != text, "edit that changes nothing"
        sent.texts.append(text)

    async def delete(self, key: ConversationKey, message_id: str) -> None:
        sent = next(s for s in self.sent if s.message_id == message_id)
        assert not sent.deleted, "deleted twice"
        sent.deleted = True

    def texts(self, key: ConversationKey | None = None) -> list[str]:
        """What each message still shown says (deleted ones left out)."""
        return [s.text for s in self.sent if (key is None or s.key == key) and not s.deleted]


class BlockingGate:
    """Flags any text containing one of its words."""

    def __init__(self, *words: str) -> None:
        self.words = words
        self.checked: list[tuple[Direction, str]] = []

    async def check(
        self, text: str, direction: Direction, key: ConversationKey, system_prompt: str = ""
    ) -> Verdict:
        self.checked.append((direction, text))
        flagged = any(w in text for w in self.words)
        return Verdict(flagged, "test", {"harassment": flagged}, {"harassment": float(flagged)},
                       "block" if flagged else "allow")


ROOM = ConversationKey("telegram", "room")


def message(
    text: str,
    message_id: str,
    key: ConversationKey = ROOM,
    *,
    author: str = "u1",
    admin: bool = False,
    direct: bool = True,
) -> IncomingMessage:
    return IncomingMessage(
        key=key, author_id=author, author_name=f"user-{author}", text=text,
        message_id=message_id, author_is_admin=admin, is_direct=direct, channel_name="#room",
    )
