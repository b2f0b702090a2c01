"""The Prometheus endpoint (HEARTH_METRICS_PORT): scraped over HTTP after a few messages."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot.messages import ConversationKey
from engine.fake import FakeEngine
from tests.conftest import make_settings, open_app
from tests.fakes import BlockingGate, RecordingAdapter, message

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(url: str) -> tuple[str, Samples]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_the_counters_move_as_messages_come(tmp_path: Path, engine: FakeEngine) -> None:
    settings = make_settings(tmp_path, metrics_port=0, user_messages_per_minute=60, user_burst=2)
    adapter = RecordingAdapter()
    async with open_app(settings, engine, gate=BlockingGate("badword")) as app:
        assert app.metrics_url is not None and app.metrics_url.startswith("http://127.0.0.1:")
        _, before = await scrape(app.metrics_url)
        for n, text in enumerate(["hello there", "you badword", "again", "and again"]):
            await app.pipeline.handle(message(text, str(n), direct=False), adapter)
        text, after = await scrape(app.metrics_url)

    assert value(before, "hearth_messages_received_total", platform="telegram") == 0
    assert value(after, "hearth_messages_received_total", platform="telegram") == 4
    assert value(after, "hearth_messages_answered_total", platform="telegram") == 1
    assert value(after, "hearth_messages_refused_total", platform="telegram", reason="moderation") == 1
    assert value(after, "hearth_messages_refused_total", platform="telegram", reason="rate_user") == 2
    assert value(after, "hearth_quota_refusals_total", platform="telegram", scope="user", kind="rate") == 2
    assert value(after, "hearth_moderation_verdicts_total", direction="input", layer="test",
                 category="harassment", flagged="true") == 1
    assert value(after, "hearth_moderation_verdicts_total", direction="output", layer="test",
                 category="none", flagged="false") >= 1
    reply_tokens = value(after, "hearth_tokens_total", platform="telegram", kind="reply")
    assert reply_tokens == 4  # "echo:", "user-u1:", "hello", "there"
    assert value(after, "hearth_time_to_first_token_seconds_count") == 1
    assert value(after, "hearth_reply_duration_seconds_count", platform="telegram") == 1
    assert value(after, "hearth_engine_state", model="demo", state="ready") == 1
    assert value(after, "hearth_queue_depth") == 0
    assert ("hearth_engine_restarts_total", frozenset()) in after
    assert ("hearth_prefix_cache_hit_rate", frozenset()) in after
    assert "python_info" in text, "the default registry (where vLLM's metrics live) is served too"


async def test_delivery_errors_are_counted_by_platform_and_status(tmp_path: Path, engine: FakeEngine) -> None:
    from bot.errors import DeliveryError

    class Refusing(RecordingAdapter):
        async def send(self, key: ConversationKey, text: str, *, reply_to: str | None = None) -> str:
            raise DeliveryError("telegram", 403, "bot was blocked by the user")

    async with open_app(make_settings(tmp_path), engine) as app:
        await app.pipeline.handle(message("hi", "1"), Refusing())
        errors = app.metrics.registry.get_sample_value(
            "hearth_delivery_errors_total", {"platform": "telegram", "status": "403"})

    assert errors == 1


async def test_metrics_are_off_unless_a_port_is_set(tmp_path: Path, engine: FakeEngine) -> None:
    async with open_app(make_settings(tmp_path), engine) as app:
        assert app.metrics_url is None
