"""HEARTH_LOG_FORMAT=json: one JSON object a line, secrets scrubbed as in text; other
libraries' records only from WARNING unless debugging."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from bot.logs import configure_logging


class Written:
    """What configure_logging's handler wrote to stderr (pytest's capture)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys

    def getvalue(self) -> str:
        return self._capsys.readouterr().err


@pytest.fixture
def stderr(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Written]:
    """What configure_logging writes, with the root logger and the levels put back after."""
    out = Written(capsys)
    for name in ("PYTHONWARNINGS", "TQDM_DISABLE", "TORCH_CPP_LOG_LEVEL", "VLLM_LOGGING_LEVEL",
                 "VLLM_CONFIGURE_LOGGING"):
        monkeypatch.delenv(name, raising=False)  # configure_logging sets them: monkeypatch restores
    root = logging.getLogger()
    kept = (root.handlers[:], root.level)
    names = ("bot", "adapters", "engine", "vllm", "py.warnings")
    levels = {name: logging.getLogger(name).level for name in names}
    try:
        yield out
    finally:
        root.handlers[:], root.level = kept[0], kept[1]
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        logging.captureWarnings(False)


def lines(out: Written) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_json_lines_carry_time_level_logger_and_message(stderr: Written) -> None:
    configure_logging("INFO", [], "json")
    logging.getLogger("bot.test").info("stored %d messages", 3)

    [entry] = lines(stderr)
    assert (entry["level"], entry["logger"], entry["message"]) == ("INFO", "bot.test", "stored 3 messages")
    assert isinstance(entry["time"], str) and entry["time"].endswith("+00:00")


def test_json_lines_are_scrubbed_of_secrets_tracebacks_too(stderr: Written) -> None:
    secret = "hunter2-proxy-password"
    configure_logging("INFO", [SecretStr(secret)], "json")
    try:
        raise ConnectionError(f"cannot reach http://hearth:{secret}@gpu-a:8000/v1")
    except ConnectionError:
        logging.getLogger("engine.remote").exception("the replica failed with %s", secret)

    text = stderr.getvalue()
    [entry] = [json.loads(line) for line in text.splitlines()]
    assert secret not in text
    assert entry["message"] == "the replica failed with ***"
    assert "ConnectionError: cannot reach http://hearth:***@gpu-a:8000/v1" in str(entry["exception"])


def test_other_libraries_speak_from_warning_and_hearth_from_its_level(stderr: Written) -> None:
    configure_logging("INFO", [])
    logging.getLogger("transformers.modeling_utils").info("loading weights…")
    logging.getLogger("discord.gateway").info("Shard ID None has connected")
    logging.getLogger("torch").warning("a warning worth seeing")
    logging.getLogger("adapters.telegram").info("serving @bot by long polling")

    text = stderr.getvalue()
    assert "loading weights" not in text and "has connected" not in text
    assert "a warning worth seeing" in text and "serving @bot by long polling" in text


def test_debugging_shows_everything(stderr: Written) -> None:
    configure_logging("DEBUG", [])
    logging.getLogger("transformers.modeling_utils").info("loading weights…")
    assert "loading weights" in stderr.getvalue()


def test_torch_and_transformers_imported_after_set_up_log_through_hearth(stderr: Written) -> None:
    """They install stderr handlers of their own and stop propagation when imported (the engine
    imports them after logging is configured): adopted, their records are scrubbed and formatted."""
    secret = "hunter2-proxy-password"
    configure_logging("INFO", [SecretStr(secret)])
    import torch  # noqa: F401  (first import in this process, or again: both install handlers)
    import transformers
    transformers.logging.get_logger("transformers").addHandler(logging.StreamHandler())  # as theirs

    from bot.logs import adopt_library_loggers
    adopted = adopt_library_loggers()
    assert "transformers" in adopted
    logging.getLogger("torch").warning("torch saw %s", secret)
    logging.getLogger("transformers.modeling_utils").warning("transformers saw %s", secret)

    text = stderr.getvalue()
    assert "WARNING torch: torch saw ***" in text
    assert "WARNING transformers.modeling_utils: transformers saw ***" in text
    assert secret not in text
