"""Keeping the bot token (and the webhook secret) out of every log line."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import SecretStr

from bot.logs import SecretFilter

# httpx logs each request URL at INFO, and the URL holds the token.
QUIET_LOGGERS = ("httpx", "httpcore")
# PTB logs its API URL (token included) and each call's parameters at DEBUG.
SCRUBBED_LOGGERS = ("telegram.ext.ExtBot", "telegram.Bot")


@contextmanager
def guarded_logs(values: list[SecretStr]) -> Iterator[None]:
    """While serving: quiet httpx, and scrub `values` from PTB's bot logger.

    Hearth's root handler scrubs every secret too; this also covers a handler
    some other code installed."""
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)
    scrub = SecretFilter(values)
    loggers = [logging.getLogger(name) for name in SCRUBBED_LOGGERS]
    for logger in loggers:
        logger.addFilter(scrub)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(scrub)

