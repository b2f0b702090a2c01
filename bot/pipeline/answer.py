"""The inner stages: the input gate, the prompt, generation behind the output gate, the record."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Protocol

from bot import i18n
from bot.context import Prompt, build_prompt
from bot.errors import DeliveryError, StoreUnavailableError
from bot.messages import ConversationKey, MessageStatus, StoredMessage, Verdict
from bot.moderation import Gate
from bot.persona import Personas
from bot.pipeline.turn import Answer, Handler, Turn
from bot.splitting import settled
from bot.store import Conversations, VerdictLog
from bot.store.journal import REPLY, Journal, reply_entry
from engine.affinity import conversation, requested_model
from engine.base import Engine
from engine.errors import EngineOutOfMemoryError, EngineUnavailableError
from engine.types import ReplyChunk, Sampling

log = logging.getLogger(__name__)

THOUGHT = "💭 "
WAITING_NOTICES = {"switching": "switching_models", "loading": "switching_models", "restarting": "restarting",
                   "stalled": "restarting"}
SHRINK = 0.8  # each retry after running out of memory: a fifth less prompt and reply
MIN_REPLY_TOKENS = 32
MAX_SHRINKS = 3
WINDOW_OVERLAP = 256  # characters of judged text a streaming window repeats (see gate_window)
INTERRUPT_BOUND_S = 1.5  # at shutdown, the most a cut reply may take to be marked and stored


class Degrade:
    """When the engine runs out of memory before anything was shown, try again with a
    fifth less room for the reply and the history (at most MAX_SHRINKS times), then
    apologise. Each step is logged and counted (`degradations`)."""

    def __init__(self) -> None:
        self.degradations = 0

    async def __call__(self, turn: Turn, call_next: Handler) -> None:
        while True:
            try:
                await call_next(turn)
                return
            except EngineOutOfMemoryError as exc:
                if turn.reply.message_ids or turn.shrink >= MAX_SHRINKS:
                    raise
                turn.shrink += 1
                self.degradations += 1
                log.warning("message %s in %s: %s; retrying with %.0f%% of the budgets",
                            turn.message_id, turn.msg.key, exc, 100 * SHRINK ** turn.shrink)


def _shrunk(sampling: Sampling, shrink: int) -> Sampling:
    if not shrink:
        return sampling
    tokens = max(MIN_REPLY_TOKENS, int(sampling.max_tokens * SHRINK**shrink))
    return dataclasses.replace(sampling, max_tokens=tokens)


class InputGate:
    """The gate judges the user message before the model sees it; a flagged one is refused."""

    def __init__(self, gate: Gate, verdicts: VerdictLog, conversations: Conversations) -> None:
        self._gate = gate
        self._verdicts = verdicts
        self._conversations = conversations

    async def __call__(self, turn: Turn, call_next: Handler) -> None:
        msg = turn.msg
        verdict = await self._gate.check(msg.turn_text, "input", msg.key)  # a quoted message too
        await self._verdicts.log_verdict(msg.key, turn.message_id, "input", verdict)
        if verdict.flagged:
            assert turn.message_id is not None, "Accept runs first"
            await self._conversations.set_status(turn.message_id, "refused")
            await turn.reply.finish(i18n.text("refusal", turn.lang))
            return
        await call_next(turn)


@dataclass(frozen=True, slots=True)
class PromptLimits:
    """`history_messages`: newest stored messages read (HEARTH_HISTORY_MESSAGES);
    `max_reply_tokens`: room kept for the reply, at most half the context."""

    history_messages: int = 200
    max_reply_tokens: int = 512

    def budget(self, max_model_len: int, shrink: int = 0) -> int:
        """Tokens the prompt may use, leaving room for the reply; a fifth less per `shrink`
        step (a retry after the engine ran out of memory)."""
        return int((max_model_len - min(self.max_reply_tokens, max_model_len // 2)) * SHRINK ** shrink)


class Pins(Protocol):
    async def pinned(self, key: ConversationKey) -> str | None: ...


class PinnedModel:
    """A channel an admin pinned to a model (`/model NAME channel`) asks the engine for
    it; everything after this stage (counting, generating) runs under that request."""

    def __init__(self, pins: Pins) -> None:
        self._pins = pins

    async def __call__(self, turn: Turn, call_next: Handler) -> None:
        with requested_model(await self._pins.pinned(turn.msg.key)):
            await call_next(turn)


class BuildPrompt:
    """History as of this message, trimmed by whole turns to the budget, after the persona."""

    def __init__(
        self, conversations: Conversations, personas: Personas, engine: Engine, limits: PromptLimits
    ) -> None:
        self._conversations = conversations
        self._personas = personas
        self._engine = engine
        self._limits = limits

    async def __call__(self, turn: Turn, call_next: Handler) -> None:
        msg = turn.msg
        assert turn.message_id is not None, "Accept runs first"
        notice = WAITING_NOTICES.get(self._engine.stats().state)
        if notice is not None:  # the prompt waits for the engine: say why, the answer replaces it
            await turn.reply.update(i18n.text(notice, turn.lang))
        # Read past the limit: build_prompt trims whole turns and moves the floor, so the
        # window does not slide by one message every turn (which would rewrite the prompt).
        history = await self._conversations.history(msg.key, self._limits.history_messages * 2)
        prompt = await build_prompt(
            await self._personas.system_prompt(msg),
            _answered_before(history, turn.message_id),
            self._engine.count_tokens,
            self._limits.budget(self._engine.max_model_len, turn.shrink),
            named=not msg.is_direct,
            max_messages=self._limits.history_messages,
        )
        if prompt.trimmed and prompt.first_message_id is not None:
            await self._conversations.set_context_floor(msg.key, prompt.first_message_id)
        turn.prompt = prompt
        await call_next(turn)


class Generate:
    """Stream the reply, showing only text the gate has passed.

    The reply is stored as generated (not stripped): re-rendered next turn, it
    then tokenises as the model produced it, which keeps the prefix cache warm."""

    def __init__(
        self, engine: Engine, gate: Gate, sampling: Sampling, record: Record,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        """`stopping`: whether Hearth was told to stop (a signal): an engine lost then went
        with it, as a terminal's Ctrl-C reaches every process of its foreground group."""
        self._engine = engine
        self._gate = gate
        self._sampling = sampling
        self._record = record
        self._stopping = stopping

    async def __call__(self, turn: Turn, call_next: Handler) -> None:
        assert turn.prompt is not None, "BuildPrompt runs first"
        shown: list[tuple[str, Verdict]] = []
        try:
            with conversation(str(turn.msg.key)):  # remote replicas route on it (hashed)
                turn.answer = await self._generate(turn, turn.prompt, shown)
        except asyncio.CancelledError:  # shutdown: say so on screen and in the store
            await self._interrupted(turn, shown[-1] if shown else None)
            raise
        except EngineUnavailableError:
            if not self._stopping():
                raise
            # Stopping: the message stays pending and is answered after the next start.
            log.info("the engine stopped with Hearth during a reply in %s", turn.msg.key)
            await self._interrupted(turn, shown[-1] if shown else None)
            return
        await call_next(turn)

    async def _generate(self, turn: Turn, prompt: Prompt, shown: list[tuple[str, Verdict]]) -> Answer:
        """Stream, gate and show; the Answer holds the answer only, never the thinking."""
        view = ReplyView(self._engine.spec.thinking, turn.lang, turn.reply.spoiler)
        final: ReplyChunk | None = None
        checked: tuple[str, Verdict] | None = None
        whole = False  # whether `checked` judged all of its text, not a window of it
        sampling = _shrunk(self._sampling, turn.shrink)
        async with aclosing(self._engine.stream(prompt.messages, sampling)) as chunks:
            async for chunk in chunks:
                if chunk.finished:
                    final = chunk
                    break
                view.add(chunk)
                # The last grapheme cluster may still grow (a skin tone, a flag's second half):
                # it waits for the next update, and the gate judges what is shown.
                if not turn.reply.due() or not (shows := settled(view.now())).strip():
                    continue
                judged = gate_window(shows, checked[0] if checked else "")
                checked, whole = (shows, await self._check(judged, turn, prompt)), judged == shows
                if checked[1].flagged:
                    return await self._refuse(turn, checked[1])
                await turn.reply.update(shows.strip())
                shown.append(checked)
        text, shows = view.final(final)
        if checked is not None and whole and checked[0] == shows:
            verdict = checked[1]
        else:
            verdict = await self._check(shows, turn, prompt)
        if verdict.flagged:
            return await self._refuse(turn, verdict)
        await _finish(turn, shows.strip())
        return Answer(text, verdict, final)

    async def _check(self, text: str, turn: Turn, prompt: Prompt) -> Verdict:
        return await self._gate.check(text, "output", turn.msg.key, prompt.messages[0].content)

    async def _refuse(self, turn: Turn, verdict: Verdict) -> Answer:
        refusal = i18n.text("refusal", turn.lang)
        await _finish(turn, refusal)
        return Answer(refusal, verdict, None)

    async def _interrupted(self, turn: Turn, shown: tuple[str, Verdict] | None) -> None:
        """End what is on screen with a short notice and keep it as `interrupted`; the user
        message stays `pending`, so it is answered again after the next start. A reply
        posted but not yet shown past the gate (a status, a first part) becomes the notice."""
        if shown is None and not turn.reply.message_ids:
            return
        text, verdict = shown if shown is not None else ("", Verdict(False))
        marked = f"{text.strip()}{i18n.text('interrupted', turn.lang)}".strip()
        try:
            async with asyncio.timeout(INTERRUPT_BOUND_S):
                await turn.reply.finish(marked)
                await self._record.store_reply(turn, Answer(text, verdict, None), "interrupted")
        except Exception:  # shutting down: the platform may be gone; the log says what was cut
            log.warning("could not mark the interrupted reply in %s", turn.msg.key, exc_info=True)


async def _finish(turn: Turn, text: str) -> None:
    """Show the final text; where the platform fails for now (5xx, 429, a dropped
    connection), keep it as `turn.undelivered`: it is recorded so (the question is
    answered, the reply waits) and delivered when the platform is back (`bot.redelivery`)."""
    try:
        await turn.reply.finish(text)
    except DeliveryError as exc:
        if not exc.transient:
            raise
        turn.undelivered = text
        log.warning("could not deliver the reply in %s (%s); it is delivered when %s is back",
                    turn.msg.key, exc, exc.platform)


class ReplyView:
    """What a reply shows while it streams and at the end, by the model's `thinking` mode:
    `hidden`/`off`: the answer, and a "thinking…" status until it starts; `shown`: the
    thinking too, collapsed (a spoiler) where the platform can. The answer alone is
    what is stored and fed back."""

    def __init__(self, mode: str, lang: str, spoiler: Callable[[str], str] | None) -> None:
        self._mode = mode
        self._lang = lang
        self._spoiler = spoiler or _quoted
        # Pieces, joined when read: `self.text += piece` would copy the whole reply on
        # every token (an attribute is never extended in place), quadratic in its length.
        self._text: list[str] = []
        self._thinking: list[str] = []

    @property
    def text(self) -> str:
        return _joined(self._text)

    @text.setter
    def text(self, value: str) -> None:
        self._text[:] = [value]

    @property
    def thinking(self) -> str:
        return _joined(self._thinking)

    def add(self, chunk: ReplyChunk) -> None:
        if chunk.restart:  # the engine starts the reply over: the new one replaces what was shown
            self._text.clear()
            self._thinking.clear()
        self._text.append(chunk.text)
        if chunk.reasoning:
            self._thinking.append(chunk.reasoning)

    def now(self) -> str:
        """The text to show while streaming."""
        if self._mode == "shown" and self.thinking.strip():
            return f"{self._spoiler(THOUGHT + self.thinking.strip())}\n\n{self.text}"
        if self.text.strip() or not self.thinking.strip():
            return self.text
        return i18n.text("thinking", self._lang)

    def final(self, last: ReplyChunk | None) -> tuple[str, str]:
        """(the answer to store, the text to show) once the stream ended."""
        if not self.text.strip():
            cut_thinking = self.thinking.strip() and last is not None and last.finish_reason == "length"
            self.text = i18n.text("thought_too_long" if cut_thinking else "empty_reply", self._lang)
        if self._mode == "shown" and self.thinking.strip():
            return self.text, self.now()
        return self.text, self.text


def gate_window(shows: str, judged: str) -> str:
    """What of `shows` the gate judges while a reply streams: all of it, until it grows
    past text already judged (`judged`, its beginning) by more than WINDOW_OVERLAP
    characters; then the new part with the last WINDOW_OVERLAP characters of `judged`
    before it, from the start of a word where one starts near there. Judging the whole
    text at every edit costs quadratic time in the reply's length (measured: 15 ms for
    10,000 characters, once a second for a minute-long reply). A word, a phrase or a
    canary shorter than the overlap is judged whole in some window; the whole reply is
    judged once it ends (`Generate`), before its final form is shown."""
    if len(judged) <= WINDOW_OVERLAP or not shows.startswith(judged):
        return shows
    start = len(judged) - WINDOW_OVERLAP
    space = max(shows.rfind(" ", 0, start), shows.rfind("\n", 0, start))
    if space >= start - WINDOW_OVERLAP // 4:  # no word judged by its tail alone
        start = space + 1
    return shows[start:]


def _joined(pieces: list[str]) -> str:
    """The pieces as one string, kept as the only piece so the next read is free."""
    if len(pieces) > 1:
        pieces[:] = ["".join(pieces)]
    return pieces[0] if pieces else ""


def _quoted(thinking: str) -> str:
    """Thinking shown where the platform has no spoiler: quoted, line by line."""
    return "\n".join(f"> {line}" for line in thinking.splitlines())


class Record:
    """Store the reply, in the turn it answers, with its verdict and token counts.

    The write waits for a failing store as long as it takes (a reply shown in full is
    recorded, never answered again); when a shutdown cuts that wait, the reply goes to
    the journal (`bot.store.journal`) and is committed at the next start, before recovery."""

    def __init__(
        self, conversations: Conversations, verdicts: VerdictLog, bot_name: str,
        journal: Journal | None = None, *, owner: str | None = None,
        on_undelivered: Callable[[], None] | None = None,
    ) -> None:
        self._conversations = conversations
        self._verdicts = verdicts
        self._bot_name = bot_name
        self._journal = journal
        self._owner = owner  # who delivers an undelivered reply again (this process)
        self._on_undelivered = on_undelivered

    async def __call__(self, turn: Turn) -> None:
        answer = turn.answer
        assert answer is not None and turn.message_id is not None, "Generate runs first"
        status: MessageStatus = "answered" if turn.undelivered is None else "undelivered"
        try:
            reply_id = await self.store_reply(turn, answer, status, question_status="answered")
        except (asyncio.CancelledError, StoreUnavailableError):
            await self._keep(turn, answer, status)
            raise
        if turn.undelivered is not None and self._on_undelivered is not None:
            self._on_undelivered()
        await self._verdicts.log_verdict(turn.msg.key, reply_id, "output", answer.verdict)

    async def store_reply(
        self, turn: Turn, answer: Answer, status: MessageStatus, question_status: MessageStatus | None = None
    ) -> int | None:
        """The reply as one stored message in the turn it answers, with its token counts;
        `question_status` is the answered message's, written in the same transaction."""
        return await self._conversations.add_message(
            turn.msg.key, "assistant", answer.text, **self._fields(turn, answer, status, question_status),
        )

    def _fields(
        self, turn: Turn, answer: Answer, status: MessageStatus, question_status: MessageStatus | None
    ) -> dict[str, Any]:
        final = answer.final or ReplyChunk("", True)
        ids = turn.reply.message_ids
        fields: dict[str, Any] = {
            "author_id": "bot", "author_name": self._bot_name,
            "platform_message_id": ids[0] if ids else None, "reply_to": turn.message_id,
            "prompt_tokens": final.prompt_tokens, "cached_tokens": final.cached_tokens,
            "reply_tokens": final.reply_tokens, "status": status, "question_status": question_status,
        }
        if status == "undelivered":  # what to show, and the parts that show part of it
            fields |= {"meta": {"deliver": turn.undelivered, "shown": ids}, "owner": self._owner}
        return fields

    async def _keep(self, turn: Turn, answer: Answer, status: MessageStatus) -> None:
        """Journal a reply the platform shows but the store has not taken (its first part's
        platform id makes committing it twice a no-op); one not shown is answered anew."""
        if self._journal is None or not turn.reply.message_ids:
            return
        fields = self._fields(turn, answer, status, "answered")
        try:
            async with asyncio.timeout(INTERRUPT_BOUND_S):
                await self._journal.append(REPLY, reply_entry(turn.msg.key, answer.text, **fields))
            log.warning("the reply in %s is journalled; it is recorded at the next start", turn.msg.key)
        except Exception:  # shutting down: the log is all that is left
            log.error("could not journal the reply in %s", turn.msg.key, exc_info=True)


def _answered_before(history: list[StoredMessage], message_id: int) -> list[StoredMessage]:
    """History as of `message_id`: later user messages wait for their own turn."""
    return [m for m in history if m.role == "assistant" or m.id <= message_id]
