"""The `hearth bench` command group."""

from __future__ import annotations

import click


@click.group()
def bench() -> None:
    """Benchmarks: each figure is a ratio of two things measured in the same run."""
