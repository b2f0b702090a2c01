"""Telegram's errors as the core's `DeliveryError`, and what each sent message shows."""

from __future__ import annotations

import pytest
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)

from adapters.telegram.outgoing import ShownTexts, delivery_error


@pytest.mark.parametrize(("error", "status"), [
    (RetryAfter(3), 429),
    (ChatMigrated(-100123), 400),
    (BadRequest("Bad Request: message to delete not found"), 400),
    (Forbidden("Forbidden: bot was blocked by the user"), 403),
    (TimedOut(), 0),
    (NetworkError("httpx.ConnectError: refused"), 0),
    (TelegramError("Invalid server response"), 0),
])
def test_a_telegram_error_becomes_a_delivery_error_with_its_http_status(
    error: TelegramError, status: int
) -> None:
    delivery = delivery_error(error, "scrubbed reason")

    assert (delivery.platform, delivery.status, delivery.reason) == ("telegram", status, "scrubbed reason")


def test_shown_texts_forget_a_deleted_message_and_keep_only_the_newest() -> None:
    shown = ShownTexts(size=2)
    shown.put("1", "a", "first")
    shown.put("1", "b", "second")
    shown.forget("1", "a")
    shown.put("1", "c", "third")
    shown.put("1", "d", "fourth")

    assert [shown.get("1", m) for m in "abcd"] == [None, None, "third", "fourth"]
