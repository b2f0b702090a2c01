"""What kind of OpenAI-compatible server a replica is, and what that kind tells or needs.

Servers speak one chat API and differ everywhere around it. Hearth tells them apart
once, at the first answer to `/v1/models`, and asks each its own way:

- `vllm` (`owned_by: vllm`): context length from `max_model_len` in `/v1/models`; token
  counts from `POST /tokenize` with the messages; continues a cut reply
  (`continue_final_message` answers with the rest only).
- `llama.cpp` (`owned_by: llamacpp`, or `GET /props` answers): context from `/props`
  `default_generation_settings.n_ctx` (per slot); counts from `POST /apply-template`,
  then `POST /tokenize {"content": …}` (its own body: vLLM's gets an empty list); never
  continues (it answers with the whole message again, prefix included).
- `ollama` (`GET /api/version` answers): context from `POST /api/show`: the model's
  `num_ctx` when set, else Ollama's default (OLLAMA_DEFAULT_CONTEXT), never past what the
  model was trained on; no token counts (estimated, calibrated on its usage reports).
- `openai`: anything else (SGLang, LocalAI, a router…): `max_model_len` when listed;
  estimated counts; never continued.

Each kind's "prompt too long" refusal is recognised (`too_long`) so the user hears that,
not that the model is unavailable. A stream ending with `[DONE]` (or a clean close)
without a `finish_reason` is complete: LocalAI, SGLang and Ollama end so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import httpx2

ServerKind = Literal["vllm", "llama.cpp", "ollama", "openai"]
CONTINUING_KINDS = frozenset({"vllm"})  # known to honour continue_final_message, returning only the rest
PROBE_TIMEOUT_S = 5.0
# Ollama runs a model with this context unless its Modelfile or request sets num_ctx
# (Ollama's documented default since 0.6; older releases had 2048).
OLLAMA_DEFAULT_CONTEXT = 4096
NUM_CTX = re.compile(r"^\s*num_ctx\s+(\d+)\s*$", re.MULTILINE)
# vLLM and OpenAI: "This model's maximum context length is 2048 tokens. However, your
# request has 2049 input tokens"; SGLang: "The input (2049 tokens) is longer than the
# model's context length (2048 tokens)"; llama.cpp: type exceed_context_size_error with
# n_prompt_tokens and n_ctx.
CONTEXT_LIMIT = re.compile(r"maximum context length is (\d+)", re.IGNORECASE)
CONTEXT_TOKENS = re.compile(r"(\d+) (?:input )?tokens", re.IGNORECASE)
SGLANG_TOO_LONG = re.compile(r"input \((\d+) tokens\) is longer than the model's context length \((\d+)",
                             re.IGNORECASE)
LLAMA_CPP_TOO_LONG = re.compile(r"request \((\d+) tokens\) exceeds the available context size \((\d+)",
                                re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TooLong:
    """A server's refusal of a prompt over its context: the prompt's tokens (0 when it did
    not say) and the limit."""

    tokens: int
    limit: int


def kind_from_models(data: object) -> ServerKind | None:
    """The kind `/v1/models` names by `owned_by`, when it names one."""
    entries = data.get("data") if isinstance(data, dict) else None
    listed = entries if isinstance(entries, list) else []
    owners = {e.get("owned_by") for e in listed if isinstance(e, dict)}
    if "vllm" in owners:
        return "vllm"
    if "llamacpp" in owners:
        return "llama.cpp"
    return None


async def detect(http: httpx2.AsyncClient, root: str, models: object) -> ServerKind:
    """The server's kind: from `/v1/models`, else by asking `/props` (llama.cpp) and
    `/api/version` (Ollama); `openai` when neither answers."""
    named = kind_from_models(models)
    if named is not None:
        return named
    if await _json(http, "GET", f"{root}/props", None, "default_generation_settings") is not None:
        return "llama.cpp"
    if await _json(http, "GET", f"{root}/api/version", None, "version") is not None:
        return "ollama"
    return "openai"


async def context_length(http: httpx2.AsyncClient, root: str, kind: ServerKind, model: str) -> int | None:
    """The context a server gives `model`, asked its own way (None: it does not say)."""
    if kind == "llama.cpp":
        settings = await _json(http, "GET", f"{root}/props", None, "default_generation_settings")
        n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
        return n_ctx if isinstance(n_ctx, int) and n_ctx > 0 else None
    if kind == "ollama":
        return _ollama_context(await _json(http, "POST", f"{root}/api/show", {"model": model}))
    return None


def _ollama_context(shown: object) -> int | None:
    """num_ctx from the model's parameters, else Ollama's default, never past the model's own."""
    if not isinstance(shown, dict):
        return None
    parameters = shown.get("parameters")
    found = NUM_CTX.search(parameters) if isinstance(parameters, str) else None
    info = shown.get("model_info")
    trained = [v for k, v in info.items() if k.endswith(".context_length") and isinstance(v, int)] \
        if isinstance(info, dict) else []
    context = int(found.group(1)) if found else OLLAMA_DEFAULT_CONTEXT
    return min([context, *trained])


class NoTokenizer(Exception):
    """The server has no way to count tokens (no endpoint, or one that answers nothing)."""


async def count_tokens(
    http: httpx2.AsyncClient, root: str, kind: ServerKind, model: str, chat: list[dict[str, str]]
) -> int | None:
    """The prompt tokens of `chat` as the server renders it; None when it cannot say now.
    Raises NoTokenizer when it never will: then it should not be asked again."""
    if kind == "vllm":
        body = {"model": model, "messages": chat, "add_generation_prompt": True}
        count = await _field(http, f"{root}/tokenize", body, "count")
        return count if isinstance(count, int) else None
    if kind == "llama.cpp":
        prompt = await _field(http, f"{root}/apply-template", {"messages": chat}, "prompt")
        if not isinstance(prompt, str):
            return None
        body = {"content": prompt, "add_special": False, "parse_special": True}
        tokens = await _field(http, f"{root}/tokenize", body, "tokens")
        if isinstance(tokens, list) and not tokens and prompt:
            raise NoTokenizer(f"{root}/tokenize answers no tokens")
        return len(tokens) if isinstance(tokens, list) else None
    raise NoTokenizer(f"a {kind} server has no tokenizer endpoint")


async def _field(http: httpx2.AsyncClient, url: str, body: dict[str, Any], field: str) -> Any:
    """A POST's JSON `field`; None when it fails for now. Raises NoTokenizer when the
    server has no such route (404, 405)."""
    try:
        response = await http.post(url, json=body, timeout=PROBE_TIMEOUT_S)
        if response.status_code in (404, 405):
            raise NoTokenizer(f"{url}: HTTP {response.status_code}")
        response.raise_for_status()
        data = response.json()
    except (httpx2.HTTPError, ValueError):
        return None
    return data.get(field) if isinstance(data, dict) else None


def too_long(status: int, body: object, message: str) -> TooLong | None:
    """The server's refusal of a prompt over its context, in any of the known wordings."""
    if status not in (400, 413):
        return None
    error = body.get("error", body) if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("type") == "exceed_context_size_error":
        n_ctx, n_prompt = error.get("n_ctx"), error.get("n_prompt_tokens")
        if isinstance(n_ctx, int):
            return TooLong(n_prompt if isinstance(n_prompt, int) else n_ctx + 1, n_ctx)
    for pattern in (LLAMA_CPP_TOO_LONG, SGLANG_TOO_LONG):
        if found := pattern.search(message):
            return TooLong(int(found.group(1)), int(found.group(2)))
    if limit := CONTEXT_LIMIT.search(message):
        tokens = [int(n) for n in CONTEXT_TOKENS.findall(message[limit.end():])]
        return TooLong(tokens[0] if tokens else int(limit.group(1)) + 1, int(limit.group(1)))
    return None


async def _json(
    http: httpx2.AsyncClient, method: str, url: str, body: dict[str, Any] | None, field: str | None = None
) -> Any:
    """The JSON answer (its `field`, when named), or None for any failure: these endpoints
    are optional, and a server without one simply does not say."""
    try:
        response = await http.request(method, url, json=body, timeout=PROBE_TIMEOUT_S)
        if response.status_code != 200:
            return None
        data = response.json()
    except (httpx2.HTTPError, ValueError):
        return None
    if field is None:
        return data
    return data.get(field) if isinstance(data, dict) else None
