"""The Prometheus endpoint: `GET /metrics` on HEARTH_METRICS_HOST:HEARTH_METRICS_PORT, and
beside it `GET /healthz` and `GET /readyz` (`bot.app.health`).

It serves `hearth_build_info` (from the first second), Hearth's registry
(`bot.metrics.Metrics`, once the app is wired: `serve`) and then prometheus_client's
default one, where vLLM's in-process engine registers its metrics (`vllm:*`) and
prometheus_client its process and Python collectors. aiohttp (already Hearth's)
serves it on the event loop; the exposition text is rendered on a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
from types import TracebackType
from typing import Self

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Info, generate_latest

from bot.app.build import build_info
from bot.app.health import Readiness
from bot.errors import ConfigError

log = logging.getLogger(__name__)

PATH = "/metrics"
JSON = "application/json"


async def started_monitor(host: str, port: int | None) -> MetricsServer | None:
    """A metrics and health server on `host`:`port`, started; None when `port` is None (off).
    Raises ConfigError when it cannot listen."""
    if port is None:
        return None
    server = MetricsServer(None, host, port)
    await server.start()
    return server


class MetricsServer:
    """Serves the metrics and the health of one Hearth while entered; start and stop are
    idempotent. `registry` (Hearth's metrics) may come later, through `serve`."""

    def __init__(self, registry: CollectorRegistry | None, host: str, port: int,
                 readiness: Readiness | None = None) -> None:
        self._registry = registry
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.readiness = readiness or Readiness()
        self._build = CollectorRegistry()
        Info("hearth_build", "Hearth's version, and what it runs on", registry=self._build).info(
            build_info().labels())

    def serve(self, registry: CollectorRegistry) -> None:
        """Serve `registry` (Hearth's metrics) from now on."""
        self._registry = registry

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
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except OSError as exc:  # the port is taken, the address is not this machine's
            await runner.cleanup()
            raise ConfigError([f"HEARTH_METRICS_PORT: cannot listen on {self._host}:{self._port}: "
                               f"{exc.strerror or exc}"]) from None
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

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text=json.dumps(self.readiness.alive()), content_type=JSON)

    async def _readyz(self, request: web.Request) -> web.Response:
        ready, body = await self.readiness.report()
        return web.Response(text=json.dumps(body), content_type=JSON, status=200 if ready else 503)

    def render(self) -> bytes:
        """Hearth's own metrics, then the default registry's (vLLM's, the process's)."""
        return self.render_own() + generate_latest(REGISTRY)

    def render_own(self) -> bytes:
        """The build info and Hearth's metrics (`hearth_*`), in the text exposition format."""
        hearth = generate_latest(self._registry) if self._registry is not None else b""
        return generate_latest(self._build) + hearth
