"""`/usage` and `/quota` through the command table (its one admin check included)."""

from __future__ import annotations

from bot.app.builder import App
from bot.messages import ConversationKey, IncomingMessage
from tests.fakes import RecordingAdapter, message

ROOM = ConversationKey("telegram", "room")
REFUSED = "can do that"  # only admins, or only operators


def member(author: str = "u1", *, admin: bool = False) -> IncomingMessage:
    return message("", f"cmd-{author}", author=author, admin=admin, direct=False)


async def chat(app: App, *authors: str) -> None:
    for n, author in enumerate(authors):
        await app.pipeline.handle(message(f"hello {n}", f"{author}-{n}", author=author, direct=False),
                                  RecordingAdapter())


async def test_anyone_sees_their_own_usage(app: App) -> None:
    await chat(app, "u1", "u1", "u2")

    reply = await app.commands.run(member("u1"), "usage")

    assert "total: 2 / 2 messages" in reply
    assert "tokens today against your daily quota" in reply and "of 200,000" in reply


async def test_a_channels_usage_is_for_its_admins(app: App) -> None:
    await chat(app, "u1", "u2", "u2")

    refused = await app.commands.run(member("u1"), "usage", "channel")
    report = await app.commands.run(member("mod", admin=True), "usage", "channel")

    assert REFUSED in refused
    assert "total: 3 / 3 messages" in report
    assert "user-u2 (u2): 2 / 2 messages" in report and "user-u1 (u1): 1 / 1 messages" in report


async def test_everything_is_for_operators(app: App) -> None:
    await chat(app, "u1")

    refused = await app.commands.run(member("mod", admin=True), "usage", "all")
    report = await app.commands.run(member("4242"), "usage", "all")

    assert REFUSED in refused
    assert "telegram:room: 1 / 1 messages" in report and "(telegram:u1)" in report


async def test_quota_shows_the_limits_in_force(app: App) -> None:
    reply = await app.commands.run(member(), "quota")

    assert "user-burst: 6" in reply
    assert "your tokens today: 0" in reply


async def test_admins_may_tighten_a_limit_here_and_reset_it(app: App) -> None:
    tightened = await app.commands.run(member("mod", admin=True), "quota", "set user-tokens 1000")
    elsewhere = await app.commands.run(message("", "x", ConversationKey("telegram", "other")), "quota")
    reset = await app.commands.run(member("mod", admin=True), "quota", "reset")

    assert "user-tokens: 1,000*" in tightened
    assert "user-tokens: 200,000" in elsewhere, "only this channel"
    assert "user-tokens: 200,000\n" in reset and "*\n" not in reset


async def test_only_operators_may_loosen_a_limit(app: App) -> None:
    by_admin = await app.commands.run(member("mod", admin=True), "quota", "set user-tokens 0")
    by_member = await app.commands.run(member("u1"), "quota", "set user-burst 1")
    by_operator = await app.commands.run(member("4242"), "quota", "set user-tokens 0")

    assert REFUSED in by_admin and REFUSED in by_member
    assert "user-tokens: 0*" in by_operator


async def test_a_limit_set_here_applies_at_once(app: App) -> None:
    await app.commands.run(member("mod", admin=True), "quota", "set user-rate 1")
    await app.commands.run(member("mod", admin=True), "quota", "set user-burst 1")
    adapter = RecordingAdapter()

    for n in range(2):
        await app.pipeline.handle(message(f"hi {n}", f"q{n}", direct=False), adapter)

    assert adapter.texts()[-1].startswith("You are sending messages faster than I can answer")


async def test_a_bad_quota_command_says_how(app: App) -> None:
    reply = await app.commands.run(member("4242"), "quota", "set nonsense 3")

    assert reply.startswith("Usage: /quota")
