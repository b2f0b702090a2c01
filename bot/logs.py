"""Logging set-up: to stderr, as text lines or JSON objects, with every secret scrubbed from
every record. Hearth's own loggers log at HEARTH_LOG_LEVEL; other libraries' (vLLM, torch,
transformers, discord.py, httpx…) only from WARNING (vLLM's from ERROR) unless debugging:
at start-up they used to be most of the log."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys

from pydantic import SecretStr

REDACTED = "***"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
OWN_LOGGERS = ("bot", "adapters", "engine", "bench", "__main__")
THIRD_PARTY_LEVEL = logging.WARNING  # other libraries' records below this are dropped (but DEBUG)
# What quiets the processes vLLM starts (its engine core), which log and print on their own:
# Python's warnings, progress bars, PyTorch's C++ warnings. Set unless already set, or debugging.
QUIET_CHILDREN = {"PYTHONWARNINGS": "ignore", "TQDM_DISABLE": "1", "TORCH_CPP_LOG_LEVEL": "ERROR"}
# Libraries that give their top logger a handler of their own and stop propagation when they are
# imported (transformers' `_configure_library_root_logger`, torch's `_init_logs`): their records
# would skip the secret filter, the format and the levels chosen here.
SELF_HANDLING = ("torch", "transformers", "huggingface_hub")


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


class JsonFormatter(logging.Formatter):
    """One JSON object per record: `time` (ISO 8601, UTC), `level`, `logger`, `message`, and
    `exception` (the traceback, scrubbed by SecretFilter before it gets here) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False)


def adopt_library_loggers(names: tuple[str, ...] = SELF_HANDLING) -> list[str]:
    """Put the loggers of the named libraries (and their children) that write to a stream of
    their own back under the root's handler: their stream handlers removed, propagation and level
    restored (torch's artifact loggers, off by design and without a stream, are left). Returns
    the names adopted. Call after importing them: configure_logging does, Hearth again once its
    engine has loaded."""
    adopted = []
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger) or name.split(".", 1)[0] not in names:
            continue
        streams = [h for h in logger.handlers if type(h) is logging.StreamHandler]
        if streams:
            for handler in streams:
                logger.removeHandler(handler)
            logger.propagate = True
            logger.setLevel(logging.NOTSET)
            adopted.append(name)
    return adopted


def configure_logging(level: str, secrets: list[SecretStr], log_format: str = "text") -> None:
    """Log to stderr at `level` ("DEBUG"…"ERROR"), as `log_format` ("text" or "json"), every
    secret scrubbed; other libraries from THIRD_PARTY_LEVEL unless `level` is DEBUG."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(LOG_FORMAT))
    if level != "DEBUG":
        handler.addFilter(Brief(BRIEF_LOGGERS))
    handler.addFilter(SecretFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    adopt_library_loggers()
    own = logging.getLevelName(level)
    root.setLevel(own if level == "DEBUG" else max(own, THIRD_PARTY_LEVEL))
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(own)
    logging.captureWarnings(True)  # libraries' import-time warnings: records, under the same rules
    logging.getLogger("py.warnings").setLevel(own if level == "DEBUG" else logging.ERROR)
    if log_format == "json":  # vLLM's records through these handlers, not its own text ones
        os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")
    for name, value in ({} if level == "DEBUG" else QUIET_CHILDREN).items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("VLLM_LOGGING_LEVEL", vllm_log_level(level))  # before vLLM is imported
    logging.getLogger("vllm").setLevel(vllm_log_level(level))
    # The remote engine's client logs every request, health checks included, at INFO.
    logging.getLogger("httpx2").setLevel(level if level == "DEBUG" else "WARNING")


def vllm_log_level(level: str) -> str:
    """vLLM's start-up warnings (Triton, tcmalloc…) mean nothing to a bot owner:
    show them only when debugging."""
    return "INFO" if level == "DEBUG" else "ERROR"
