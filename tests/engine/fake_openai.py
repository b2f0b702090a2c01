"""A small OpenAI-compatible server on 127.0.0.1, for the remote engine's tests.

It serves `/v1/models`, streamed `/v1/chat/completions` (with usage), and optionally
vLLM's `/tokenize` and `/metrics`; it records every request, and fails on cue: an
HTTP status for every chat request, a stream cut after N chunks, or the whole server
down (port closed) and up again on the same port. Any other route is answered 404
and kept in `unexpected`, which the tests check is empty.

`kind` plays another server's quirks, as seen from the real ones:
- `llama.cpp`: `owned_by: llamacpp`; `/props` with `n_ctx`; `/tokenize` takes
  `{"content"}` (vLLM's body gets `{"tokens": []}`) and `/apply-template` renders the
  chat; "too long" is a 400 of type `exceed_context_size_error`; a continued reply
  (`continue_final_message`) comes back whole, the prefix again;
- `ollama`: `/api/version`, `/api/show` with `num_ctx` in its parameters, no tokenizer,
  usage only when asked, and no `finish_reason` (`[DONE]` ends the stream);
- `openai`: nothing beyond the API (LocalAI, SGLang…).
`finish_reason=False` sends none (the stream still ends with `[DONE]`); `too_long`
refuses every chat as the kind words it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

TOKEN_COUNT = 7  # what /tokenize answers, whatever the prompt
WORDS = ("hello", " from", " the", " fake")
MAX_STOP = 4  # `stop` strings a chat request may carry (OpenAI's API; vLLM's server: 400 beyond)
OWNERS = {"vllm": "vllm", "llama.cpp": "llamacpp", "ollama": "library"}  # /v1/models `owned_by`


@dataclass(slots=True)
class Seen:
    """One chat request as the server received it (header names in lower case)."""

    body: dict[str, Any]
    headers: dict[str, str]


@dataclass(slots=True)
class FakeOpenAI:
    """An OpenAI-compatible server that streams `words`, one chunk each."""

    name: str = "fake"
    kind: str = "vllm"  # or llama.cpp, ollama, openai (see the module docstring)
    n_ctx: int = 2048  # what llama.cpp's /props and Ollama's num_ctx say
    finish_reason: bool = True
    too_long: bool = False
    models: tuple[str, ...] = ("demo",)
    max_model_len: int | None = 2048
    words: tuple[str, ...] = WORDS
    reasoning: tuple[str, ...] = ()  # streamed first as `delta.reasoning`, as vLLM's parsers do
    tokenize: bool = True
    metrics: bool = True
    fail_status: int | None = None
    fail_message: str = "scripted failure"
    cut_after: int | None = None
    chunk_delay: float = 0.0
    api_key: str | None = None
    basic: tuple[str, str] | None = None  # Basic credentials every request must carry (a proxy's)
    chats: list[Seen] = field(default_factory=list)
    tokenized: int = 0
    resets: int = 0
    unexpected: list[str] = field(default_factory=list)
    disconnected: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> FakeOpenAI:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        # Servers without these routes (llama.cpp, Ollama) answer 404: expected, not a test failure.
        tokenize = {"vllm": self._tokenize, "llama.cpp": self._llama_tokenize}.get(self.kind)
        app.router.add_post("/tokenize", tokenize if tokenize and self.tokenize else _not_found)
        app.router.add_get("/metrics", self._metrics if self.metrics else _not_found)
        app.router.add_post("/reset_prefix_cache", self._reset)
        # Asked of a server that names no kind; where it has no such route, 404 is expected.
        app.router.add_get("/props", self._props if self.kind == "llama.cpp" else _not_found)
        app.router.add_get("/api/version", self._version if self.kind == "ollama" else _not_found)
        if self.kind == "llama.cpp":
            app.router.add_post("/apply-template", self._apply_template)
        if self.kind == "ollama":
            app.router.add_post("/api/show", self._show)
        app.router.add_route("*", "/{tail:.*}", self._unexpected)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        if not self.port:
            self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        """Close the port: connections are refused until `start()` again (same port)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _authorised(self, request: web.Request) -> bool:
        given = request.headers.get("Authorization")
        if self.basic is not None:
            return given == aiohttp.BasicAuth(*self.basic).encode()
        return self.api_key is None or given == f"Bearer {self.api_key}"

    async def _models(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"error": {"message": "bad key"}}, status=401)
        owner = OWNERS.get(self.kind, "organization-owner")
        data = [{"id": m, "object": "model", "owned_by": owner} for m in self.models]
        if self.kind == "vllm":
            data = [entry | {"max_model_len": self.max_model_len} for entry in data]
        return web.json_response({"object": "list", "data": data})

    async def _props(self, request: web.Request) -> web.Response:
        return web.json_response({"default_generation_settings": {"n_ctx": self.n_ctx, "params": {}},
                                  "total_slots": 1, "build_info": "b0-fake"})

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": "0.12.6"})

    async def _apply_template(self, request: web.Request) -> web.Response:
        body = await request.json()
        prompt = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in body["messages"])
        return web.json_response({"prompt": prompt + "<|im_start|>assistant\n"})

    async def _llama_tokenize(self, request: web.Request) -> web.Response:
        """llama.cpp's /tokenize: one token per word of `content`; any other body, none."""
        self.tokenized += 1
        content = (await request.json()).get("content")
        tokens = list(range(len(content.split()))) if isinstance(content, str) else []
        return web.json_response({"tokens": tokens})

    async def _show(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("model") not in self.models:
            return web.json_response({"error": "model not found"}, status=404)
        return web.json_response({"parameters": f"num_ctx {self.n_ctx}\nstop \"<|im_end|>\"",
                                  "model_info": {"qwen2.context_length": 32768}})

    async def _tokenize(self, request: web.Request) -> web.Response:
        self.tokenized += 1
        return web.json_response({"count": TOKEN_COUNT, "max_model_len": self.max_model_len, "tokens": []})

    async def _metrics(self, request: web.Request) -> web.Response:
        served = len(self.chats)
        text = (
            "# HELP vllm:prefix_cache_queries Prefix cache queries\n"
            f'vllm:prefix_cache_queries_total{{engine="0",model_name="demo"}} {100.0 * served}\n'
            f'vllm:prefix_cache_hits_total{{engine="0",model_name="demo"}} {75.0 * served}\n'
            'vllm:prefix_cache_hits_created{engine="0",model_name="demo"} 1.7e9\n'
            'vllm:num_requests_running{engine="0",model_name="demo"} 1.0\n'
            'vllm:num_requests_waiting{engine="0",model_name="demo"} 2.0\n'
            'vllm:kv_cache_usage_perc{engine="0",model_name="demo"} 0.25\n'
        )
        return web.Response(text=text)

    async def _reset(self, request: web.Request) -> web.Response:
        self.resets += 1
        return web.Response()

    async def _unexpected(self, request: web.Request) -> web.Response:
        self.unexpected.append(f"{request.method} {request.path}")
        return web.json_response({"error": {"message": "unexpected"}}, status=404)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.chats.append(Seen(body, {k.lower(): v for k, v in request.headers.items()}))
        if not self._authorised(request):
            return web.json_response({"error": {"message": "bad key"}}, status=401)
        if self.fail_status is not None:
            return web.json_response({"error": {"message": self.fail_message}}, status=self.fail_status)
        if self.too_long:
            return web.json_response(_too_long(self.kind, self.n_ctx), status=400)
        if body.get("model") not in self.models:
            return web.json_response({"error": {"message": "no such model"}}, status=404)
        if len(stop := body.get("stop") or []) > MAX_STOP:  # vLLM's and OpenAI's validation
            message = f"stop: at most {MAX_STOP} items, not {len(stop)}"
            return web.json_response({"error": {"message": message}}, status=400)
        return await self._stream(request, body)

    async def _stream(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        words = self.words[: body.get("max_tokens") or len(self.words)]
        partial = body["messages"][-1]["content"] if body.get("continue_final_message") else ""
        if partial and self.kind == "llama.cpp":  # it answers with the whole message, prefix again
            words = (partial, *words)
        try:
            for thought in self.reasoning:
                await _event(response, {"choices": [{"index": 0, "delta": {"reasoning": thought},
                                                     "finish_reason": None}]})
            for i, word in enumerate(words):
                if self.cut_after is not None and i >= self.cut_after:
                    assert request.transport is not None
                    request.transport.close()  # the server dies mid-reply
                    return response
                if self.chunk_delay:
                    await asyncio.sleep(self.chunk_delay)
                finish = "length" if i == len(words) - 1 and self.finish_reason else None
                await _event(response, {"choices": [{"index": 0, "delta": {"content": word},
                                                     "finish_reason": finish}]})
            usage = {"prompt_tokens": TOKEN_COUNT, "completion_tokens": len(words),
                     "total_tokens": TOKEN_COUNT + len(words), "prompt_tokens_details": {"cached_tokens": 3}}
            await _event(response, {"choices": [], "usage": usage})
            await response.write(b"data: [DONE]\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnected += 1
            raise
        return response


def _too_long(kind: str, n_ctx: int) -> dict[str, Any]:
    """A prompt over the context, refused as each server words it."""
    if kind == "llama.cpp":
        return {"error": {"code": 400, "type": "exceed_context_size_error", "n_prompt_tokens": n_ctx + 952,
                          "n_ctx": n_ctx, "message": f"request ({n_ctx + 952} tokens) exceeds the available "
                          f"context size ({n_ctx} tokens), try increasing it"}}
    if kind == "openai":  # SGLang
        return {"object": "error", "type": "BadRequestError", "code": 400,
                "message": f"The input ({n_ctx + 952} tokens) is longer than the model's context length "
                           f"({n_ctx} tokens)."}
    return {"error": {"message": f"This model's maximum context length is {n_ctx} tokens. However, your "
                                 f"request has {n_ctx + 952} input tokens.", "type": "BadRequestError",
                      "code": 400}}


async def _not_found(request: web.Request) -> web.Response:
    return web.json_response({"detail": "Not Found"}, status=404)


async def _event(response: web.StreamResponse, payload: dict[str, Any]) -> None:
    chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": "demo",
             **payload}
    await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
