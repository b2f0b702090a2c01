"""Retention as the app runs it: the settings' policy, and a prune as soon as the app opens."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

from bot.app.upkeep import USAGE_MIN_DAYS, retention_policy
from bot.messages import ConversationKey, Verdict
from bot.retention import RetentionPolicy
from bot.store import SqliteStore
from engine.fake import FakeEngine
from tests.conftest import make_settings, open_app

ROOM = ConversationKey("telegram", "-100")


def test_the_policy_follows_the_settings(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, retention_days=90, message_retention_days=365)
    assert retention_policy(settings) == RetentionPolicy(90, 90, 365)


def test_usage_rows_outlive_what_usage_reports(tmp_path: Path) -> None:
    assert retention_policy(make_settings(tmp_path, retention_days=1)).usage_days == USAGE_MIN_DAYS == 7


def test_zero_keeps_verdicts_and_usage_forever(tmp_path: Path) -> None:
    assert retention_policy(make_settings(tmp_path, retention_days=0)) == RetentionPolicy(0, 0, 0)


def test_messages_are_kept_forever_by_default(tmp_path: Path) -> None:
    assert retention_policy(make_settings(tmp_path)) == RetentionPolicy(30, 30, 0)


async def test_an_opened_app_prunes_old_verdicts_at_once(tmp_path: Path, engine: FakeEngine) -> None:
    settings = make_settings(tmp_path)
    async with SqliteStore(settings.database) as store:
        await store.add_verdict(ROOM, None, "input", Verdict(False))
        await store.add_verdict(ROOM, None, "input", Verdict(True, "words", {"hate": True}, {}, "block"))
    with closing(sqlite3.connect(settings.database)) as db, db:  # the first: 31 days old
        db.execute("UPDATE verdicts SET created_at = created_at - 31 * 86400 WHERE id = 1")
    async with open_app(settings, engine) as app:
        for _ in range(100):  # the prune runs in the app's task: at most 5 s
            if len(await app.store.verdicts(ROOM)) == 1:
                break
            await asyncio.sleep(0.05)
        assert [v.flagged for _, _, v in await app.store.verdicts(ROOM)] == [True]
