"""The remote engine: chat completions streamed from OpenAI-compatible servers.

`vllm serve` (tensor/pipeline parallel, or Ray across nodes, behind one URL), a vLLM
router or production-stack, llama.cpp's server or Ollama: anything that speaks
`/v1/chat/completions`. With several URLs, Hearth itself picks the replica for each
conversation by rendezvous hashing (see `engine.affinity`), fails over to the next one
when a replica does not answer, retries a bounded number of times, and checks every
replica's health in the background so a replica that comes back gets its conversations
back. A reply cut mid-stream is continued on a server known to continue one (vLLM),
else asked for again and the new answer replaces the cut one (`ReplyChunk.restart`).
Each server is asked for its context length and token counts its own way
(`engine.servers`); where none can count, the estimate is calibrated on the prompt
tokens the servers report (`engine.tokens.Calibration`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path

from engine.affinity import Rotation, Routing, current_model, current_session, rendezvous
from engine.errors import EngineUnavailableError, ModelLoadError, PromptTooLongError
from engine.fleet import ReplicaStatus
from engine.handoff import Handoff
from engine.registry import ModelSpec
from engine.replica import Replica, ReplicaError
from engine.request import complete
from engine.tokens import Calibration, LocalTokenizer, estimate_tokens
from engine.types import ChatMessage, EngineStats, ReplyChunk, Sampling
from engine.untrusted import ControlTokens, tokenizer_controls

log = logging.getLogger(__name__)

DEFAULT_MAX_MODEL_LEN = 4096  # when neither the server (vLLM says) nor HEARTH_MAX_MODEL_LEN does
START_PROBE_INTERVAL_S = 1.0
RETRY_BACKOFF_S = 0.5  # before asking a replica again that already failed this request
REMOTE_QUANTIZATION = "remote"  # what /status shows: the server decides

EngineEvent = Callable[[str, str], None]  # (state, detail), as the supervisor reports them


@dataclass(frozen=True, slots=True)
class RemoteOptions:
    """How to reach the servers and how hard to try.

    `model`: the served model to use (None: the first `/v1/models` lists); `attempts`:
    requests per reply, over all replicas; `timeout_s`: the longest wait for the first
    token or the next one; `start_wait_s`: how long `start` waits for a first replica."""

    urls: tuple[str, ...]
    api_key: str | None = None
    model: str | None = None
    routing: Routing = "affinity"
    attempts: int = 3
    timeout_s: float = 60.0
    health_interval_s: float = 5.0
    start_wait_s: float = 120.0
    max_model_len: int | None = None
    tokenizer: Path | None = None


@dataclass(frozen=True, slots=True)
class _Count:
    """Prompt tokens: `exact` when a tokenizer counted them; else `tokens` is the calibrated
    estimate and `estimate` the raw one (`estimate_tokens`) it came from."""

    tokens: int
    exact: bool
    estimate: int = 0


class RemoteEngine:
    """One model served by one or more remote replicas; the engine contract plus
    `served_models()` (for /model) and `replicas()` (for /status)."""

    def __init__(self, options: RemoteOptions, on_event: EngineEvent | None = None) -> None:
        if not options.urls:
            raise ValueError("the remote engine needs at least one URL")
        self._options = options
        self._on_event = on_event
        self._replicas = self._connect()
        self._rotation = Rotation()
        self._spec = ModelSpec(
            name=options.model or "remote", source=self._replicas[0].url, quantization=REMOTE_QUANTIZATION
        )
        self._max_model_len = options.max_model_len or DEFAULT_MAX_MODEL_LEN
        self._stats = EngineStats(model=self._spec.name, quantization=REMOTE_QUANTIZATION)
        self._counts: Handoff[tuple[str, tuple[ChatMessage, ...]], _Count] = Handoff()
        self._tokenizer: LocalTokenizer | None = None
        self._calibration = Calibration()
        # Its tokenizer's control tokens when HEARTH_ENGINE_TOKENIZER gives it, else the common formats'.
        self._controls = ControlTokens.generic()
        self._health: asyncio.Task[None] | None = None
        self._closed = False

    def _connect(self) -> list[Replica]:
        options = self._options
        return [Replica(url, options.api_key, options.timeout_s) for url in options.urls]

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    @property
    def max_model_len(self) -> int:
        return self._max_model_len

    def stats(self) -> EngineStats:
        return self._stats

    async def __aenter__(self) -> RemoteEngine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Wait (at most `start_wait_s`) for a replica serving the model, then check health
        in the background. Raises ModelLoadError when none does."""
        if self._health is not None:
            return
        if self._closed:  # started again after close(): new connections
            self._replicas, self._closed = self._connect(), False
        self._tokenizer = await asyncio.to_thread(_load_tokenizer, self._options.tokenizer)
        if self._tokenizer is not None:
            self._controls = tokenizer_controls(self._tokenizer.raw)
        try:
            async with asyncio.timeout(self._options.start_wait_s):
                await self._first_replica()
        except TimeoutError:
            reasons = "; ".join(f"{r.url}: {r.last_error}" for r in self._replicas)
            await self._close_replicas()
            raise ModelLoadError(self._spec.name, f"no replica answered ({reasons})") from None
        except ModelLoadError:
            await self._close_replicas()
            raise
        self._health = asyncio.create_task(self._watch(), name="remote-engine-health")

    async def close(self) -> None:
        if self._health is not None:
            self._health.cancel()
            await asyncio.gather(self._health, return_exceptions=True)
            self._health = None
        if not self._closed:
            await self._close_replicas()
        self._stats.state = "stopped"

    async def switch(self, spec: ModelSpec) -> None:
        """Use another model the replicas serve; raises ModelLoadError when none serves it."""
        await self._probe_all()
        self._use(spec.name)

    async def served_models(self) -> list[str]:
        """Every model the healthy replicas list at `/v1/models`, in the order they list them."""
        await self._probe_all()
        names = [m.name for r in self._replicas if r.healthy for m in r.models]
        return list(dict.fromkeys(names))

    async def replicas(self) -> list[ReplicaStatus]:
        """Each replica's health and, from vLLM's `/metrics`, its prefix cache and queue."""
        return list(await asyncio.gather(*(r.status() for r in self._replicas)))

    async def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return (await self._count(self._controls.neutralise_all(messages))).tokens

    async def stream(
        self, messages: Sequence[ChatMessage], sampling: Sampling
    ) -> AsyncGenerator[ReplyChunk, None]:
        """Stream a reply; every message's content is neutralised first (the server renders
        it with its chat template: `engine.untrusted`), and the reply ends at a control token."""
        if self._health is None:
            raise EngineUnavailableError("the remote engine is not started")
        messages = self._controls.neutralise_all(messages)
        count = await self._count(messages, take=True)
        if count.exact and count.tokens >= self._max_model_len:
            raise PromptTooLongError(count.tokens, self._max_model_len)
        self._stats.running += 1
        try:
            async for chunk in self._failover(messages, sampling, count):
                yield chunk
        finally:
            self._stats.running -= 1

    async def _failover(
        self, messages: Sequence[ChatMessage], sampling: Sampling, count: _Count
    ) -> AsyncGenerator[ReplyChunk, None]:
        """Ask the replicas in preference order, at most `attempts` times in all; what a
        failed one already streamed is continued by the next."""
        session = current_session()
        order = self._order(session)
        text, produced, errors = "", 0, []
        for attempt in range(self._options.attempts):
            replica = order[attempt % len(order)]
            if attempt >= len(order):
                await asyncio.sleep(RETRY_BACKOFF_S)
            if produced and not replica.continues:  # asked again from the start: the answer replaces
                text, produced = "", 0
                yield ReplyChunk("", restart=True)
            before = produced
            room = max(1, self._max_model_len - count.tokens - before)
            request = complete(replica, self._model(), messages, sampling, session, text, before, room,
                               self._controls)
            try:
                async with aclosing(request):  # closing the reply closes its connection at once
                    async for chunk in request:
                        if chunk.finished:
                            replica.replies += 1
                            if not count.exact and not before:
                                self._calibration.learn(count.estimate, chunk.prompt_tokens)
                            final = _final(chunk, count, before)
                            self._stats.record(final)
                            yield final
                            return
                        text, produced = text + chunk.text, produced + 1
                        yield chunk
            except ReplicaError as exc:
                errors.append(str(exc))
                self._failed(replica, exc)
        self._stats.last_error = errors[-1] if errors else "no replica"
        raise EngineUnavailableError("no replica answered: " + "; ".join(errors))

    def _failed(self, replica: Replica, exc: ReplicaError) -> None:
        log.warning("replica %s failed a request (%s); trying the next", replica.url, exc.reason)
        if exc.down:
            replica.mark_down(exc.reason)
            self._update_state()

    def _order(self, session: str | None, *, rotate: bool = True) -> list[Replica]:
        """Healthy replicas serving the model first, in this conversation's preference
        order (or the next in turn, with round-robin or no conversation named)."""
        by_url = {r.url: r for r in self._replicas}
        if self._options.routing == "affinity" and session is not None:
            ranked = rendezvous(session, list(by_url))
        elif rotate:
            ranked = self._rotation.order(list(by_url))
        else:
            ranked = list(by_url)
        replicas = [by_url[url] for url in ranked]
        model = self._model()
        usable = [r for r in replicas if r.healthy and r.serves(model)]
        return usable + [r for r in replicas if r not in usable]

    def _model(self) -> str:
        """The model this request asked for (a channel's pin), when a healthy replica
        serves it; else the one serving everyone."""
        wanted = current_model()
        if not wanted or wanted == self._spec.name:
            return self._spec.name
        served = any(r.healthy and r.serves(wanted) for r in self._replicas)
        return wanted if served else self._spec.name

    async def _count(self, messages: Sequence[ChatMessage], *, take: bool = False) -> _Count:
        """Exact when a server or the local tokenizer can say; else a generous estimate.
        The pipeline counts a prompt and then streams the very same one: a count is kept
        for the stream, which (`take`) takes it (`engine.handoff`)."""
        key = (self._model(), tuple(messages))
        known = self._counts.take(key) if take else self._counts.peek(key)
        if known is not None:
            return known
        count = await self._measure(messages)
        if not take:
            self._counts.keep(key, count)
        return count

    async def _measure(self, messages: Sequence[ChatMessage]) -> _Count:
        for replica in self._order(current_session(), rotate=False)[:2]:
            if replica.healthy:
                tokens = await replica.tokenize(self._model(), messages)
                if tokens is not None:
                    return _Count(tokens, True)
        if self._tokenizer is not None:
            try:
                return _Count(await asyncio.to_thread(self._tokenizer.count, messages), True)
            except ValueError as exc:
                log.warning("local tokenizer failed (%s); estimating", exc)
        raw = estimate_tokens(messages)
        return _Count(self._calibration.tokens(raw), False, raw)

    async def _first_replica(self) -> None:
        while True:
            await self._probe_all()
            if any(r.healthy for r in self._replicas):
                self._use(self._options.model or self._first_served())
                return
            await asyncio.sleep(START_PROBE_INTERVAL_S)

    def _first_served(self) -> str:
        return next(m.name for r in self._replicas if r.healthy for m in r.models)

    def _use(self, name: str) -> None:
        """Serve `name` from now on: its context length from the servers, capped by ours."""
        serving = [r for r in self._replicas if r.healthy and r.serves(name)]
        if not serving:
            served = sorted({m.name for r in self._replicas if r.healthy for m in r.models})
            raise ModelLoadError(name, f"not served by any replica (served: {', '.join(served) or 'none'})")
        limits = [m.max_model_len for r in serving for m in r.models if m.name == name and m.max_model_len]
        if self._options.max_model_len:
            limits.append(self._options.max_model_len)
        self._max_model_len = min(limits, default=DEFAULT_MAX_MODEL_LEN)
        self._spec = ModelSpec(name=name, source=serving[0].url, quantization=REMOTE_QUANTIZATION,
                               max_model_len=self._max_model_len)
        self._stats.model = name
        self._counts.clear()
        self._update_state()
        log.info("serving model %s from %d of %d replicas", name, len(serving), len(self._replicas))

    async def _probe_all(self) -> None:
        await asyncio.gather(*(r.probe() for r in self._replicas))
        self._update_state()

    async def _watch(self) -> None:
        """Health checks, for as long as the engine runs: a replica that answers again is
        used again (its conversations move back to it)."""
        while True:
            await asyncio.sleep(self._options.health_interval_s)
            await self._probe_all()

    def _update_state(self) -> None:
        ready = any(r.healthy and r.serves(self._spec.name) for r in self._replicas)
        state = "ready" if ready else "failed"
        if state != self._stats.state and self._health is not None:  # changes while serving
            detail = ", ".join(f"{r.url}: {r.last_error}" for r in self._replicas if not r.healthy)
            self._emit("ready" if ready else "unavailable", detail or "every replica answers")
        if not ready:  # why: the replicas that are down (one that is up has no error to show)
            down = [r for r in self._replicas if not r.healthy] or self._replicas
            self._stats.last_error = "; ".join(f"{r.url}: {r.last_error or 'does not serve the model'}"
                                               for r in down)
        elif self._stats.state != "ready":  # serving again (or for the first time): nothing is wrong now
            self._stats.last_error = ""
        self._stats.state = state

    def _emit(self, state: str, detail: str) -> None:
        if self._on_event is not None:
            self._on_event(state, detail)

    async def _close_replicas(self) -> None:
        self._closed = True
        await asyncio.gather(*(r.close() for r in self._replicas))


def _final(chunk: ReplyChunk, count: _Count, produced_before: int) -> ReplyChunk:
    """The last chunk, with counts for the whole reply: a continued reply's request
    included what the failed replica had produced."""
    prompt = chunk.prompt_tokens - produced_before if chunk.prompt_tokens else count.tokens
    reply = produced_before + chunk.reply_tokens
    return ReplyChunk("", True, chunk.finish_reason, max(prompt, 0), chunk.cached_tokens, reply)


def _load_tokenizer(directory: Path | None) -> LocalTokenizer | None:
    if directory is None:
        return None
    try:
        return LocalTokenizer.load(directory)
    except (OSError, ValueError) as exc:
        log.warning("cannot use the tokenizer in %s (%s); counting by the servers or estimating",
                    directory, exc)
        return None
