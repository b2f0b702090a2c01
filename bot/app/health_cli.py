"""`hearth health`: ask the running Hearth's health endpoint (`bot.app.health`), for a
container's HEALTHCHECK or a script. Exit 0 when it answers 200, 1 otherwise, 2 when
HEARTH_METRICS_PORT is unset (nothing to ask). Only the standard library: it runs often."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

import click

from bot.app.cli_support import fail, settings_or_exit

ASK_TIMEOUT_S = 5.0
ANY_ADDRESS = {"0.0.0.0", "::", ""}  # listening everywhere: ask on loopback


def health_url(host: str, port: int, path: str) -> str:
    """The URL to ask a Hearth listening on `host`:`port`."""
    host = "127.0.0.1" if host in ANY_ADDRESS else host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}{path}"


@click.command()
@click.option("--live", is_flag=True,
              help="Only whether the process answers (/healthz), not whether it serves.")
def health(live: bool) -> None:
    """Ask a running Hearth whether it is ready (exit 0) or not (exit 1): for container health checks."""
    settings = settings_or_exit()
    if settings.metrics_port is None:
        fail(["HEARTH_METRICS_PORT is not set: Hearth serves no health endpoint to ask"])
    url = health_url(settings.metrics_host, settings.metrics_port, "/healthz" if live else "/readyz")
    try:
        with urllib.request.urlopen(url, timeout=ASK_TIMEOUT_S) as response:
            click.echo(response.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as exc:  # 503: answering, not ready
        click.echo(exc.read().decode("utf-8", "replace"))
        sys.exit(1)
    except OSError as exc:
        click.echo(f"hearth: {url} does not answer ({exc})", err=True)
        sys.exit(1)
