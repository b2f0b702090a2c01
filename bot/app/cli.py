"""The `hearth` command. Heavy subcommands (`bench`, `moderate`) are imported only when run."""

from __future__ import annotations

import asyncio
import importlib
import sys
from pathlib import Path

import click

from bot.app.build import build_info
from bot.app.cli_support import fail, settings_or_exit
from bot.errors import ConfigError
from bot.logs import configure_logging
from engine.errors import RegistryError, UnknownModelError
from engine.registry import Registry

# name → ("module:attribute" of a click command, imported on first use; its short help,
# so that `hearth --help` lists it without importing it).
LAZY_COMMANDS = {
    "bench": (
        "bench.cli:bench", "Measure Hearth against a naive bot and vLLM alone (needs the bench extra).",
    ),
    "moderate": ("bot.app.moderate:moderate", "Check text from stdin with the bot's moderation gate."),
    "export": ("bot.app.owner_cli:export", "Export stored messages as JSON lines (everything, a channel or a "
               "conversation)."),
    "backup": ("bot.app.owner_cli:backup", "Copy the SQLite database to TARGET while Hearth runs "
               "(PostgreSQL: says how)."),
    "forget": ("bot.app.owner_cli:forget", "Erase one person's messages, the replies to them, their "
               "verdicts and usage, everywhere."),
    "health": ("bot.app.health_cli:health", "Ask a running Hearth whether it is ready (exit 0) or not "
               "(exit 1): for container health checks."),
}


class LazyGroup(click.Group):
    """A group whose listed subcommands load on demand (click's documented lazy-loading pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in LAZY_COMMANDS:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = LAZY_COMMANDS[cmd_name][0].partition(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """`hearth --help`: lazy commands are listed from their short help, not imported."""
        rows = []
        for name in self.list_commands(ctx):
            if name in LAZY_COMMANDS:
                rows.append((name, LAZY_COMMANDS[name][1]))
            elif (command := super().get_command(ctx, name)) is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(build_info().line())
        ctx.exit()


@click.group(cls=LazyGroup)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show Hearth's version (and vLLM's) and exit.")
def main() -> None:
    """Hearth: a self-hosted chat bot answered by a local LLM."""


@main.command()
def run() -> None:
    """Run the bot: platform adapters whose tokens are set, else a terminal chat."""
    from bot.app.runner import serve

    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.secrets(), settings.log_format)
    try:
        code = asyncio.run(serve(settings, sys.stdin, sys.stdout))
    except (RegistryError, ConfigError) as exc:
        fail(exc.problems)
    except UnknownModelError as exc:
        fail([f"HEARTH_MODEL: {exc}"])
    sys.exit(code)


@main.command("demo-model")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--quantize", type=click.Choice(["awq"]), default=None, help="Write a 4-bit AWQ checkpoint.")
@click.option("--shape", default=None, metavar="MODEL",
              help="Random weights in a real model's exact shape: qwen2.5-0.5b, qwen2.5-1.5b or qwen2.5-7b.")
def demo_model(directory: Path, quantize: str | None, shape: str | None) -> None:
    """Build the tiny offline demo model (or, with --shape, a realistic-size one) into DIRECTORY."""
    if shape is not None:
        from engine.shapes import SHAPES, build_shape_model

        if shape not in SHAPES:
            raise click.BadParameter(f"one of {', '.join(SHAPES)}", param_hint="--shape")
        path = build_shape_model(directory, shape, quantize=quantize)
    else:
        from engine.demo_model import build_demo_model

        path = build_demo_model(directory, quantize=quantize)  # type: ignore[arg-type]
    click.echo(f"demo model written to {path}")


@main.command()
def models() -> None:
    """List the model registry."""
    settings = settings_or_exit()
    try:
        registry = Registry.load(settings.models_file)
    except RegistryError as exc:
        fail(exc.problems)
    for spec in registry:
        click.echo(f"{spec.name:<24} {spec.quantization:<5} {spec.device:<4} {spec.source}")
        click.echo(f"    {spec.description}")
