"""The Prometheus endpoint: `GET /metrics` on HEARTH_METRICS_HOST:HEARTH_METRICS_PORT.

It serves Hearth's registry (`bot.metrics.Metrics`) and then prometheus_client's
default one, where vLLM's in-process engine registers its metrics (`vllm:*`) and
prometheus_client its process and Python collectors. aiohttp (already Hearth's)
serves it on the event loop; the exposition text is rendered on a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Self

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

PATH = "/metrics"


class MetricsServer:
    """Serves `registry` and the default registry while entered; start and stop are idempotent."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self._registry = registry
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """Where the metrics are (with the port actually bound, when 0 was asked for)."""
        if self._runner is None or not self._runner.addresses:
            raise RuntimeError("the metrics server is not running")
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}{PATH}"

    async def start(self) -> None:
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_get(PATH, self._metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("metrics at %s", self.url)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        body = await asyncio.to_thread(self.render)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def render(self) -> bytes:
        """Hearth's metrics, then the default registry's (vLLM's, the process's)."""
        return generate_latest(self._registry) + generate_latest(REGISTRY)
