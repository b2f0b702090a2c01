"""The `hearth` command."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from bot.bench.cli import bench
from bot.cli_support import fail, settings_or_exit
from bot.errors import ConfigError, UnknownModelError
from bot.logs import configure_logging
from bot.moderation.cli import moderate
from bot.registry import Registry


@click.group()
def main() -> None:
    """Hearth: a self-hosted chat bot answered by a local LLM."""


@main.command()
def run() -> None:
    """Run the bot: platform adapters whose tokens are set, else a terminal chat."""
    from bot.runner import serve

    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.secrets())
    try:
        code = asyncio.run(serve(settings, sys.stdin, sys.stdout))
    except ConfigError as exc:
        fail(exc.problems)
    except UnknownModelError as exc:
        fail([f"HEARTH_MODEL: {exc}"])
    sys.exit(code)


@main.command("demo-model")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--quantize", type=click.Choice(["awq"]), default=None, help="Write a 4-bit AWQ checkpoint.")
def demo_model(directory: Path, quantize: str | None) -> None:
    """Build the tiny offline demo model into DIRECTORY."""
    from engine.demo_model import build_demo_model

    path = build_demo_model(directory, quantize=quantize)  # type: ignore[arg-type]
    click.echo(f"demo model written to {path}")


@main.command()
def models() -> None:
    """List the model registry."""
    settings = settings_or_exit()
    try:
        registry = Registry.load(settings.models_file)
    except ConfigError as exc:
        fail(exc.problems)
    for spec in registry:
        click.echo(f"{spec.name:<18} {spec.quantization:<5} {spec.device:<4} {spec.source}")
        click.echo(f"    {spec.description}")


main.add_command(bench)
main.add_command(moderate)
