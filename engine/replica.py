"""One OpenAI-compatible server the remote engine may send requests to, and what it knows of it.

Chat completions go through the `openai` client; the endpoints outside the OpenAI API
(vLLM's `/tokenize` and `/metrics`, llama.cpp's `/props`, Ollama's `/api/show`…) through
httpx2, the HTTP client openai is built on, sharing its connection pool. A replica is
healthy while it answers `GET /v1/models`; failures mark it down until a health check
sees it answer again. Its kind (`engine.servers`) is learnt at its first answer and
decides how its context length and token counts are asked for, and whether a reply
it was given to finish may be continued there.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit, urlunsplit

import httpx2
import openai

from engine.fleet import ReplicaStatus, ServerMetrics
from engine.servers import CONTINUING_KINDS, NoTokenizer, ServerKind, context_length, count_tokens, detect
from engine.types import ChatMessage
from engine.urls import redact_url, scrub_credentials, split_credentials

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.0
PROBE_TIMEOUT_S = 5.0
KEEPALIVE_CONNECTIONS = 64
API_PREFIX = "/v1"
UNUSED_API_KEY = "EMPTY"  # the openai client insists on a key; servers without auth ignore it
# From vLLM's /metrics (Prometheus text): counters are exposed with a _total suffix.
PREFIX_QUERIES = "vllm:prefix_cache_queries_total"
PREFIX_HITS = "vllm:prefix_cache_hits_total"
RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_USAGE = "vllm:kv_cache_usage_perc"
METRICS = frozenset({PREFIX_QUERIES, PREFIX_HITS, RUNNING, WAITING, KV_USAGE})


@dataclass(frozen=True, slots=True)
class ServedModel:
    """A model a replica lists at `/v1/models`; `max_model_len` when the server says (vLLM)."""

    name: str
    max_model_len: int | None = None


class ReplicaError(Exception):
    """A replica failed a request; `down` when it should not get more until it recovers."""

    def __init__(self, url: str, reason: str, *, down: bool = True) -> None:
        super().__init__(f"{url}: {reason}")
        self.reason = reason
        self.down = down


class Replica:
    """An OpenAI-compatible base URL (`http://host:8000/v1`) and its health.

    A URL's `user:password@` (a proxy's Basic credentials) is taken out and handed to the
    HTTP client apart: `url`, which is logged and shown in `/status`, never carries it."""

    def __init__(self, url: str, api_key: str | None, timeout_s: float) -> None:
        bare, credentials = split_credentials(normalise_url(url))
        self.url = bare
        self.root = self.url.removesuffix(API_PREFIX)  # where vLLM serves /tokenize and /metrics
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        timeout = httpx2.Timeout(timeout_s, connect=CONNECT_TIMEOUT_S)
        # No cap on connections: the server queues requests itself, and a request waiting
        # for a pooled connection must not time out and mark a healthy replica down.
        limits = httpx2.Limits(max_connections=None, max_keepalive_connections=KEEPALIVE_CONNECTIONS)
        self._http = httpx2.AsyncClient(headers=headers, timeout=timeout, limits=limits, auth=credentials)
        self.api = openai.AsyncOpenAI(
            base_url=self.url, api_key=api_key or UNUSED_API_KEY, max_retries=0, timeout=timeout,
            http_client=self._http,
        )
        self.models: tuple[ServedModel, ...] = ()
        self.kind: ServerKind | None = None  # learnt at the first answer
        self.healthy = False
        self.last_error = "not checked yet"
        self.down_since: float | None = time.monotonic()
        self.replies = 0
        self._tokenize = True  # until the server shows it cannot count
        self._contexts: dict[str, int | None] = {}  # per model, from servers that say it their own way

    def serves(self, model: str) -> bool:
        return any(m.name == model for m in self.models)

    @property
    def continues(self) -> bool:
        """Whether a reply cut elsewhere may be continued here (`continue_final_message`)."""
        return self.kind in CONTINUING_KINDS

    async def probe(self) -> bool:
        """Ask `/v1/models`; healthy when it answers with a model list. Never raises.
        The first answer also tells the server's kind; each model's context is asked once."""
        try:
            response = await self._http.get(f"{self.url}/models", timeout=PROBE_TIMEOUT_S)
            response.raise_for_status()
            data = response.json()
            models = _parse_models(data)
        except (httpx2.HTTPError, ValueError) as exc:
            self.mark_down(_describe(exc))
            return False
        if self.kind is None:
            self.kind = await detect(self._http, self.root, data)
            log.info("replica %s is a %s server", self.url, self.kind)
        self.models = tuple([await self._with_context(m) for m in models])
        self.mark_up()
        return True

    async def _with_context(self, model: ServedModel) -> ServedModel:
        if model.max_model_len is not None or self.kind is None:
            return model
        if model.name not in self._contexts:
            self._contexts[model.name] = await context_length(self._http, self.root, self.kind, model.name)
        return ServedModel(model.name, self._contexts[model.name])

    def mark_down(self, reason: str) -> None:
        if self.healthy:
            log.warning("replica %s is down: %s", self.url, reason)
            self.down_since = time.monotonic()
        self.healthy = False
        self.last_error = reason

    def mark_up(self) -> None:
        if not self.healthy and self.down_since is not None:
            log.info("replica %s answers (serving %s)", self.url, ", ".join(m.name for m in self.models))
        self.healthy = True
        self.down_since = None
        self.last_error = ""  # up: no error to show ("not checked yet" is over)

    async def tokenize(self, model: str, messages: Sequence[ChatMessage]) -> int | None:
        """Prompt tokens as the server renders the chat (vLLM's `/tokenize`; llama.cpp's
        `/apply-template` and `/tokenize`); None when it cannot say. A server that cannot
        is not asked again."""
        if not self._tokenize or self.kind is None:
            return None
        try:
            chat = [m.as_dict() for m in messages]
            return await count_tokens(self._http, self.root, self.kind, model, chat)
        except NoTokenizer as exc:
            log.info("replica %s cannot count tokens (%s): estimating", self.url, exc)
            self._tokenize = False
            return None

    async def metrics(self) -> ServerMetrics | None:
        """vLLM's `/metrics`, or None (not vLLM, or no answer)."""
        if self.kind != "vllm":
            return None
        try:
            response = await self._http.get(f"{self.root}/metrics", timeout=PROBE_TIMEOUT_S)
            response.raise_for_status()
        except httpx2.HTTPError:
            return None
        values = parse_metrics(response.text)
        if PREFIX_QUERIES not in values:
            return None
        return ServerMetrics(
            int(values[PREFIX_QUERIES]), int(values.get(PREFIX_HITS, 0)), int(values.get(RUNNING, 0)),
            int(values.get(WAITING, 0)), values.get(KV_USAGE, 0.0),
        )

    async def status(self) -> ReplicaStatus:
        down_for = None if self.down_since is None else time.monotonic() - self.down_since
        return ReplicaStatus(
            self.url, self.healthy, tuple(m.name for m in self.models), self.replies,
            "" if self.healthy else self.last_error, down_for, await self.metrics(),
        )

    async def close(self) -> None:
        await self.api.close()
        await self._http.aclose()


def normalise_url(url: str) -> str:
    """The OpenAI base URL: `http://host:8000` and `http://host:8000/v1/` both become `…/v1`."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {redact_url(url)!r}")
    path = parts.path.rstrip("/") or API_PREFIX
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def parse_metrics(text: str) -> dict[str, float]:
    """The Prometheus text lines Hearth reads, each summed over its label sets."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_and_labels, _, rest = line.rpartition("}") if "}" in line else line.partition(" ")
        name = name_and_labels.split("{", 1)[0].strip()
        if name not in METRICS:
            continue
        try:
            value = float(rest.split()[0])
        except (IndexError, ValueError):
            continue
        if math.isfinite(value):
            values[name] = values.get(name, 0.0) + value
    return values


def _parse_models(data: object) -> tuple[ServedModel, ...]:
    entries = data.get("data") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError("/v1/models: no model list")
    models = []
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            length = entry.get("max_model_len")
            models.append(ServedModel(entry["id"], length if isinstance(length, int) else None))
    return tuple(models)


def _describe(exc: BaseException) -> str:
    """A short reason for a failed probe: never the server's body, never a URL's credentials."""
    if isinstance(exc, httpx2.HTTPStatusError):
        return http_reason(exc.response.status_code)
    if isinstance(exc, json.JSONDecodeError):
        return "not JSON"
    text = str(exc).strip()
    return scrub_credentials(text.splitlines()[0][:200]) if text else type(exc).__name__


def http_reason(status: int) -> str:
    """`HTTP 401 Unauthorized`: what a server's refusal is shown as (its body may echo a key)."""
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"
