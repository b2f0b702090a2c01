"""What the Telegram tests share: the fast pacing, people and chats, a holding engine, helpers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from adapters.telegram import Pacing, TelegramAdapter, TelegramConfig
from bot.app.builder import App
from bot.messages import ConversationKey
from bot.store import Store
from engine.fake import FakeEngine
from engine.registry import ModelSpec
from engine.types import ChatMessage, ReplyChunk, Sampling
from tests.adapters.telegram.fake_telegram import Chat, FakeTelegram, Posted, User

FAST = Pacing(
    edit_interval=0.05, chat_interval=0.02, group_window=1.0, typing_every=0.2, retry_backoff=0.05,
    poll_timeout=1.0, shutdown_grace=0.5,
)
ALICE = User(101, "Alice", "alice")
BOB = User(102, "Bob", "bob")
LISTED = User(777, "Owner", "owner")  # in HEARTH_ADMIN_IDS
DM = Chat(ALICE.id, "private")
DM_BOB = Chat(BOB.id, "private")
DM_LISTED = Chat(LISTED.id, "private")
GROUP = Chat(-1001, "supergroup", "Tea Room")
FORUM = Chat(-1002, "supergroup", "Pets", is_forum=True)
MENTION = "@HearthTestBot"
BLOCKED = "zorblax"  # on no shipped list: blocked only once an admin says so
WAIT_S = 5.0
POLL_S = 0.01


def key(chat: Chat, thread: int | None = None) -> ConversationKey:
    return ConversationKey("telegram", str(chat.id), str(thread) if thread else "")


class HeldEngine(FakeEngine):
    """The fake engine, able to hold back the reply to a message containing a word."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self._holds: dict[str, Callable[[], Awaitable[object]]] = {}

    def hold(self, word: str, until: Callable[[], Awaitable[object]]) -> None:
        """Answer a message containing `word` only once `until()` returns."""
        self._holds[word] = until

    async def stream(
        self, messages: Sequence[ChatMessage], sampling: Sampling
    ) -> AsyncGenerator[ReplyChunk, None]:
        for word, until in self._holds.items():
            if word in messages[-1].content:
                await until()
        async for chunk in super().stream(messages, sampling):
            yield chunk




def adapter_for(app: App, config: TelegramConfig) -> TelegramAdapter:
    return TelegramAdapter(config, app.pipeline, app.commands, app.modes, FAST)


@asynccontextmanager
async def serving(
    adapter: TelegramAdapter, fake: FakeTelegram, ready: str = "getUpdates"
) -> AsyncIterator[TelegramAdapter]:
    """Run the adapter until the block ends; `ready` names the call that shows it is serving."""
    task = asyncio.create_task(adapter.run())
    await fake.wait_for(lambda: bool(fake.calls_to(ready)) or task.done(), WAIT_S)
    if task.done():
        await task  # a start-up failure surfaces here
    try:
        yield adapter
    finally:
        await adapter.stop()
        await asyncio.wait_for(task, WAIT_S)


async def history(store: Store, conversation: ConversationKey, count: int = 0) -> list[str]:
    """The stored texts, once there are at least `count` (the core stores a reply after
    its last edit, so the fake sees the reply a moment before the store has it)."""
    async def texts() -> list[str]:
        return [m.text for m in await store.history(conversation)]

    for _ in range(int(WAIT_S / POLL_S)):
        if len(found := await texts()) >= count:
            return found
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"fewer than {count} messages stored in {conversation}")


async def answer_to(fake: FakeTelegram, chat: Chat, message_id: int) -> Posted:
    """The bot's message quoting `message_id` (in a group, an answer quotes its question)."""
    def quoting() -> list[Posted]:
        return [m for m in fake.bot_messages(chat) if m.reply_to == message_id]

    await fake.wait_for(lambda: bool(quoting()), WAIT_S)
    return quoting()[0]



