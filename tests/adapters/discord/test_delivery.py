"""Sending, editing and deleting when Discord says no: retries and `DeliveryError`."""

from __future__ import annotations

import pytest

from bot import i18n
from bot.errors import DeliveryError
from tests.adapters.discord.harness import CHANNEL, Running, reply_to
from tests.adapters.discord.payloads import ADMIN_ID


async def test_the_fake_rejects_content_over_2000_characters(hearth: Running) -> None:
    with pytest.raises(DeliveryError) as caught:
        await hearth.adapter.send(CHANNEL, "x" * 2001)

    assert (caught.value.platform, caught.value.status) == ("discord", 400)
    assert "code 50035" in caught.value.reason


async def test_delete_removes_a_sent_message(hearth: Running) -> None:
    message_id = await hearth.adapter.send(CHANNEL, "soon gone")

    await hearth.adapter.delete(CHANNEL, message_id)

    assert int(message_id) not in hearth.fake.posted
    assert hearth.fake.deleted[int(message_id)].text == "soon gone"


async def test_deleting_an_unknown_message_raises_a_delivery_error(hearth: Running) -> None:
    with pytest.raises(DeliveryError) as caught:
        await hearth.adapter.delete(CHANNEL, "4242")

    assert caught.value.status == 404
    assert "code 10008" in caught.value.reason


async def test_notify_sends_an_operator_a_direct_message(hearth: Running) -> None:
    await hearth.adapter.notify(str(ADMIN_ID), "the engine is back")

    [dm] = [p for p in hearth.fake.posted.values() if p.channel_id == ADMIN_ID + 1]
    assert dm.text == "the engine is back"


async def test_a_rate_limited_send_is_waited_out_and_arrives_once(hearth: Running) -> None:
    hearth.fake.rate_limit_next("create_message", retry_after=0.3)
    mid = await hearth.fake.user_message("hi", mention=True)

    [reply] = await reply_to(hearth.fake, mid, "hi")

    assert reply.text == "echo: ⟦Bob⟧: hi"
    assert [r.status for r in hearth.fake.calls("create_message")] == [429, 200]


async def test_a_503_is_retried_by_the_adapter(hearth: Running) -> None:
    hearth.fake.fail_next("create_message", 503, message="Service Unavailable", code=0)
    mid = await hearth.fake.user_message("hi", mention=True)

    [reply] = await reply_to(hearth.fake, mid, "hi")

    assert reply.text == "echo: ⟦Bob⟧: hi"
    assert [r.status for r in hearth.fake.calls("create_message")] == [503, 200]


async def test_a_500_is_retried_by_discord_py(hearth: Running) -> None:
    hearth.fake.fail_next("create_message", 500, message="Internal Server Error", code=0)
    mid = await hearth.fake.user_message("hi", mention=True)

    [reply] = await reply_to(hearth.fake, mid, "hi")

    assert reply.text == "echo: ⟦Bob⟧: hi"
    assert [r.status for r in hearth.fake.calls("create_message")] == [500, 200]


async def test_a_rejected_send_gives_a_short_error_and_a_logged_reason(
    hearth: Running, caplog: pytest.LogCaptureFixture
) -> None:
    hearth.fake.fail_next("create_message", 403, message="Missing Permissions", code=50013)
    mid = await hearth.fake.user_message("hi", mention=True)

    [reply] = await reply_to(hearth.fake, mid, ".")

    assert reply.text == i18n.text("internal_error", "en")
    assert any("50013" in r.getMessage() and "Missing Permissions" in r.getMessage() for r in caplog.records)
