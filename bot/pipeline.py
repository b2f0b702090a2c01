"""The one place an `IncomingMessage` becomes a reply.

dedupe → store → gate → build prompt → stream from the engine → gate each
update → store the reply and its verdict → send/edit through the adapter.
Errors become a short localised reply here, and only here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from adapters.base import Adapter
from bot import i18n
from bot.context import Prompt, build_prompt
from bot.errors import HearthError, MessageTooLongError
from bot.messages import ConversationKey, IncomingMessage, StoredMessage, Verdict
from bot.streaming import ReplyStream
from engine.base import ReplyChunk

if TYPE_CHECKING:
    from bot.core import Hearth

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    verdict: Verdict
    final: ReplyChunk | None


class Pipeline:
    """Answers messages: concurrently across conversations, in order within one."""

    def __init__(self, core: Hearth) -> None:
        self._core = core
        self._locks: dict[ConversationKey, asyncio.Lock] = {}
        self._waiting: dict[ConversationKey, int] = {}

    async def handle(self, msg: IncomingMessage, adapter: Adapter) -> None:
        """Answer `msg` through `adapter`; never raises for a bad message or a failing engine."""
        lang = self._core.language(msg.text)
        stream = ReplyStream(adapter, msg.key, reply_to=msg.message_id)
        try:
            message_id = await self._accept(msg)
            if message_id is None:
                return
            async with self._turn(msg.key):
                await self._answer(msg, message_id, stream)
        except Exception as exc:  # the outer boundary: every failure becomes a reply
            self._log_failure(msg, exc)
            await self._apologise(stream, i18n.error_text(exc, lang))

    async def _accept(self, msg: IncomingMessage) -> int | None:
        """Store the user message at once, so a crash loses nothing; None for a duplicate."""
        limit = self._core.settings.max_message_chars
        if len(msg.text) > limit:
            raise MessageTooLongError(len(msg.text), limit)
        message_id = await self._core.store.add_message(
            msg.key, "user", msg.text,
            author_id=msg.author_id, author_name=msg.author_name,
            platform_message_id=msg.message_id,
        )
        if message_id is None:
            log.info("duplicate delivery of %s in %s ignored", msg.message_id, msg.key)
        return message_id

    async def _answer(self, msg: IncomingMessage, message_id: int, stream: ReplyStream) -> None:
        core = self._core
        verdict = await core.gate.check(msg.text, "input", msg.key)
        await core.store.add_verdict(msg.key, message_id, "input", verdict)
        if verdict.flagged:
            await stream.finish(i18n.text("refusal", core.language(msg.text)))
            return
        prompt = await self._prompt(msg, message_id)
        reply = await self._generate(msg, prompt, stream)
        await self._record(msg, message_id, reply, stream)

    async def _prompt(self, msg: IncomingMessage, message_id: int) -> Prompt:
        core = self._core
        history = await core.store.history(msg.key, core.settings.history_messages)
        prompt = await build_prompt(
            await core.system_prompt(msg),
            _answered_before(history, message_id),
            core.engine.count_tokens,
            core.prompt_budget(),
            named=not msg.is_direct,
        )
        if prompt.trimmed and prompt.first_message_id is not None:
            await core.store.set_context_floor(msg.key, prompt.first_message_id)
        return prompt

    async def _generate(self, msg: IncomingMessage, prompt: Prompt, stream: ReplyStream) -> Reply:
        """Stream the reply, showing only text the gate has passed.

        The reply is stored as generated (not stripped): re-rendered next turn, it
        then tokenises as the model produced it, which keeps the prefix cache warm.
        """
        core, text, final = self._core, "", None
        checked: tuple[str, Verdict] | None = None
        async with aclosing(core.engine.stream(prompt.messages, core.sampling())) as chunks:
            async for chunk in chunks:
                if chunk.finished:
                    final = chunk
                    break
                text += chunk.text
                if not stream.due():
                    continue
                checked = (text, await self._check(text, msg, prompt))
                if checked[1].flagged:
                    return await self._refuse(msg, stream, checked[1])
                await stream.update(text.strip())
        verdict = checked[1] if checked and checked[0] == text else await self._check(text, msg, prompt)
        if verdict.flagged:
            return await self._refuse(msg, stream, verdict)
        if not text.strip():
            text = i18n.text("empty_reply", core.language(msg.text))
        await stream.finish(text.strip())
        return Reply(text, verdict, final)

    async def _check(self, text: str, msg: IncomingMessage, prompt: Prompt) -> Verdict:
        return await self._core.gate.check(text, "output", msg.key, prompt.messages[0].content)

    async def _refuse(self, msg: IncomingMessage, stream: ReplyStream, verdict: Verdict) -> Reply:
        refusal = i18n.text("refusal", self._core.language(msg.text))
        await stream.finish(refusal)
        return Reply(refusal, verdict, None)

    async def _record(self, msg: IncomingMessage, message_id: int, reply: Reply, stream: ReplyStream) -> None:
        final = reply.final or ReplyChunk("", True)
        ids = stream.message_ids
        reply_id = await self._core.store.add_message(
            msg.key, "assistant", reply.text,
            author_id="bot", author_name=self._core.settings.bot_name,
            platform_message_id=ids[0] if ids else None, reply_to=message_id,
            prompt_tokens=final.prompt_tokens, cached_tokens=final.cached_tokens,
            reply_tokens=final.reply_tokens,
        )
        await self._core.store.add_verdict(msg.key, reply_id, "output", reply.verdict)

    @asynccontextmanager
    async def _turn(self, key: ConversationKey) -> AsyncIterator[None]:
        """One reply at a time per conversation, in arrival order (asyncio.Lock is FIFO)."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:
                del self._waiting[key], self._locks[key]

    def queue_depth(self) -> int:
        """Messages accepted and not yet answered, across all conversations."""
        return sum(self._waiting.values())

    async def _apologise(self, stream: ReplyStream, text: str) -> None:
        try:
            await stream.finish(text)
        except Exception:  # the platform itself is failing; the log is all we have
            log.exception("could not deliver an error reply")

    @staticmethod
    def _log_failure(msg: IncomingMessage, exc: Exception) -> None:
        if isinstance(exc, HearthError):
            log.warning("message %s in %s: %s", msg.message_id, msg.key, exc)
        else:
            log.exception("message %s in %s failed", msg.message_id, msg.key)


def _answered_before(history: list[StoredMessage], message_id: int) -> list[StoredMessage]:
    """History as of `message_id`: later user messages wait for their own turn."""
    return [m for m in history if m.role == "assistant" or m.id <= message_id]
