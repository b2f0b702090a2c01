"""Logging set-up: to stderr, with every secret scrubbed from every record."""

from __future__ import annotations

import logging
import sys

from pydantic import SecretStr

REDACTED = "***"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def redact(text: str, secrets: list[SecretStr]) -> str:
    """`text` with every (non-empty) secret value replaced by REDACTED."""
    for secret in secrets:
        if value := secret.get_secret_value():
            text = text.replace(value, REDACTED)
    return text


class SecretFilter(logging.Filter):
    """Replaces any secret value in a record's final message, its traceback (an exception's
    text can quote a URL with its password, a server's body with the key) and its stack."""

    def __init__(self, secrets: list[SecretStr]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s.get_secret_value()]
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        record.msg, record.args = redact(record.getMessage(), self._secrets), None
        if record.exc_info and not record.exc_text:  # formatted here, so the handler uses ours
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self._secrets)
        return True


class Brief(logging.Filter):
    """A library's failure as one line (its message and the exception's), no traceback:
    for libraries that log every retry of something Hearth reports itself (asyncpg's
    pool while PostgreSQL is down: `bot.store.faults` says it once)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        super().__init__()
        self._names = names

    def filter(self, record: logging.LogRecord) -> bool:
        library = record.name.split(".", 1)[0]
        if library in self._names and record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            record.msg, record.args = f"{record.getMessage()} ({type(error).__name__}: {error})", None
            record.exc_info = record.exc_text = None
        return True


# Libraries whose retries Hearth reports itself: one line each, their tracebacks only when debugging.
BRIEF_LOGGERS = ("asyncpg",)


def configure_logging(level: str, secrets: list[SecretStr]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    if level != "DEBUG":
        handler.addFilter(Brief(BRIEF_LOGGERS))
    handler.addFilter(SecretFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("vllm").setLevel(vllm_log_level(level))
    # The remote engine's client logs every request, health checks included, at INFO.
    logging.getLogger("httpx2").setLevel(level if level == "DEBUG" else "WARNING")


def vllm_log_level(level: str) -> str:
    """vLLM's start-up warnings (Triton, tcmalloc…) mean nothing to a bot owner:
    show them only when debugging."""
    return "INFO" if level == "DEBUG" else "ERROR"
