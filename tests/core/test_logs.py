"""Secrets never reach the log."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr

from bot.logs import REDACTED, SecretFilter


def test_secret_values_are_scrubbed_from_messages_and_args(caplog: pytest.LogCaptureFixture) -> None:
    token = "123456:ABC-very-secret-token"
    logger = logging.getLogger("test.secrets")
    logger.addFilter(SecretFilter([SecretStr(token)]))
    try:
        with caplog.at_level(logging.INFO, "test.secrets"):
            logger.info("calling https://api.example/bot%s/getMe", token)
            logger.info(f"token in the message itself: {token}")
    finally:
        logger.filters.clear()

    assert token not in caplog.text
    assert caplog.text.count(REDACTED) == 2


def test_a_traceback_is_scrubbed_too(caplog: pytest.LogCaptureFixture) -> None:
    password = "hunter2-proxy-password"
    logger = logging.getLogger("test.secrets.traceback")
    logger.addFilter(SecretFilter([SecretStr(password)]))
    try:
        with caplog.at_level(logging.INFO, "test.secrets.traceback"):
            try:
                raise ConnectionError(f"cannot reach http://hearth:{password}@gpu-a:8000/v1")
            except ConnectionError:
                logger.exception("the replica failed")
    finally:
        logger.filters.clear()

    assert "ConnectionError: cannot reach http://hearth:***@gpu-a:8000/v1" in caplog.text
    assert password not in caplog.text
