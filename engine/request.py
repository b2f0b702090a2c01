"""One streamed chat completion from one replica, as reply chunks.

Every way a replica can fail becomes a `ReplicaError` (the remote engine then asks
the next one); a prompt the model cannot take is a `PromptTooLongError` (no replica
would take it), in any server's wording (`engine.servers.too_long`). A stream is
complete when it ends with `[DONE]` or the server closes it cleanly, with or without a
`finish_reason` (LocalAI, SGLang and Ollama send none); only a broken connection or a
stall cuts it. Closing the stream closes the connection, and vLLM aborts the request.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

import httpx2
import openai

from engine.errors import PromptTooLongError
from engine.replica import Replica, ReplicaError, http_reason
from engine.servers import too_long
from engine.types import ChatMessage, ReplyChunk, Sampling
from engine.untrusted import ControlTokens
from engine.urls import scrub_credentials

SESSION_HEADER = "X-Session-ID"  # vLLM router's consistent_hash; production-stack's sessionKey
ENDED = "stop"  # the finish reason of a stream that ended without saying one
# Rejections that say nothing about the replica's health: the next one may take it.
NOT_A_FAILURE = frozenset({400, 413, 422, 429})


async def complete(
    replica: Replica,
    model: str,
    messages: Sequence[ChatMessage],
    sampling: Sampling,
    session: str | None,
    partial: str = "",
    produced: int = 0,
    room: int | None = None,
    controls: ControlTokens | None = None,
) -> AsyncGenerator[ReplyChunk, None]:
    """Stream `model`'s reply to `messages` from `replica`; with `partial`, continue that
    reply (`produced` tokens of it so far). The last chunk is `finished`, with counts.

    The reply ends at the first of `controls`' stop strings: they are sent as `stop`, and a
    server that writes one anyway is cut there (the connection closed, the request aborted)."""
    controls = controls or ControlTokens.generic()
    body = _request(model, messages, sampling, session, partial, produced, room)
    body["stop"] = controls.remote_stops()
    scanner = controls.scanner()
    reply_tokens, finish, usage = 0, None, None
    try:
        stream = await replica.api.chat.completions.create(**body)
        async with stream:
            async for event in stream:
                usage = event.usage or usage
                for choice in event.choices[:1]:
                    finish = choice.finish_reason or finish
                    text, thinking = choice.delta.content, _reasoning(choice.delta)
                    if text is not None or thinking:
                        reply_tokens += 1
                    shown = scanner.feed(text or "")
                    if shown or thinking:
                        yield ReplyChunk(shown, reasoning=thinking)
                if scanner.stopped:
                    finish = "stop"
                    break
        if tail := scanner.end():
            yield ReplyChunk(tail)
    except openai.APIStatusError as exc:
        raise _rejected(replica, exc, messages) from exc
    except (openai.APIError, httpx2.HTTPError) as exc:
        raise ReplicaError(replica.url, _reason(exc)) from exc
    yield _last(finish or ENDED, usage, reply_tokens)


def _request(
    model: str, messages: Sequence[ChatMessage], sampling: Sampling, session: str | None,
    partial: str, produced: int, room: int | None,
) -> dict[str, Any]:
    wanted = sampling.max_tokens - produced
    extra: dict[str, Any] = {}
    # vLLM's (and SGLang's) own fields; other servers ignore them.
    if sampling.repetition_penalty is not None:
        extra["repetition_penalty"] = sampling.repetition_penalty
    if sampling.ignore_eos:
        extra["ignore_eos"] = True
    if sampling.pattern is not None:
        extra["structured_outputs"] = {"regex": sampling.pattern}
    chat = [m.as_dict() for m in messages]
    if partial:  # go on with the reply a failed replica left half-done
        chat.append({"role": "assistant", "content": partial})
        extra.update(continue_final_message=True, add_generation_prompt=False)
    body: dict[str, Any] = {
        "model": model,
        "messages": chat,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": max(1, min(wanted, room) if room is not None else wanted),
        "extra_body": extra or None,
    }
    # Unset: the server's defaults (vllm serve applies the model's generation_config.json).
    for name in ("temperature", "top_p", "seed"):
        if (value := getattr(sampling, name)) is not None:
            body[name] = value
    if session is not None:
        body["user"] = session
        body["extra_headers"] = {SESSION_HEADER: session}
    return body


def _reasoning(delta: Any) -> str:
    """Thinking a server-side reasoning parser split off: `reasoning` (vLLM), or the older
    `reasoning_content` (llama.cpp, vLLM before 0.11)."""
    extra = getattr(delta, "model_extra", None) or {}
    value = extra.get("reasoning") or extra.get("reasoning_content")
    return value if isinstance(value, str) else ""


def _last(finish: str, usage: Any, reply_tokens: int) -> ReplyChunk:
    if usage is None:  # servers that ignore include_usage: the engine fills in its own count
        return ReplyChunk("", True, finish, 0, 0, reply_tokens)
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) or 0
    return ReplyChunk("", True, finish, usage.prompt_tokens, cached, usage.completion_tokens)


def _rejected(replica: Replica, exc: openai.APIStatusError, messages: Sequence[ChatMessage]) -> Exception:
    refusal = too_long(exc.status_code, exc.body, _message(exc))
    if refusal is not None:
        return PromptTooLongError(refusal.tokens, refusal.limit)
    # The body is the server's: it may echo the key or the request. Only its status goes on.
    return ReplicaError(replica.url, http_reason(exc.status_code), down=exc.status_code not in NOT_A_FAILURE)


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        text = inner.get("message") if isinstance(inner, dict) else inner
        if isinstance(text, str):
            return text
    return str(exc.message)


def _reason(exc: BaseException) -> str:
    text = scrub_credentials(str(exc).strip())
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__
