"""Admin commands, platform-neutral, on the fake engine."""

from __future__ import annotations

from bot import i18n
from bot.app.builder import App
from bot.app.settings import Settings
from bot.messages import ConversationKey
from bot.serving import ACTIVE_MODEL, initial_model
from engine.fake import FakeEngine
from engine.supervisor import SupervisionPolicy, Supervisor
from tests.conftest import open_app
from tests.fakes import RecordingAdapter, message

GROUP = ConversationKey("telegram", "group")


def member(text: str = "", key: ConversationKey = GROUP, *, direct: bool = False):  # type: ignore[no-untyped-def]
    return message(text, "c1", key, author="someone", direct=direct)


def admin(text: str = "", key: ConversationKey = GROUP):  # type: ignore[no-untyped-def]
    return message(text, "c2", key, author="4242", direct=False)


async def test_model_lists_the_registry_and_marks_the_served_one(app: App) -> None:
    reply = await app.commands.run(member(), "model")
    assert "* demo " in reply
    assert "demo-awq" in reply and "qwen2.5-7b-awq" in reply


async def test_a_non_admin_cannot_switch_the_model(app: App) -> None:
    reply = await app.commands.run(member(), "model", "demo-awq")

    assert reply == i18n.text("not_operator", "en", action="/model")
    assert app.engine.spec.name == "demo"
    assert await app.store.get_setting(ACTIVE_MODEL) is None


async def test_a_listed_admin_switches_and_the_choice_is_stored(app: App) -> None:
    reply = await app.commands.run(admin(), "model", "demo-awq")

    assert reply == "Now serving demo-awq (awq)."
    assert app.engine.spec.name == "demo-awq"
    assert await app.store.get_setting(ACTIVE_MODEL) == "demo-awq"


async def test_a_channel_admin_may_not_switch_the_model_for_everyone(app: App) -> None:
    msg = message("", "c3", GROUP, author="chat-owner", admin=True, direct=False)

    for args in ("demo-awq", "demo-awq global"):
        assert await app.commands.run(msg, "model", args) == i18n.text("not_operator", "en", action="/model")
    assert app.engine.spec.name == "demo"
    assert await app.store.get_setting(ACTIVE_MODEL) is None


async def test_a_channel_admin_may_pin_their_channel_to_a_served_model(app: App) -> None:
    msg = message("", "c3", GROUP, author="chat-owner", admin=True, direct=False)

    assert await app.commands.run(msg, "model", "demo channel") == "This channel is answered by demo."
    assert (await app.commands.run(msg, "model", "demo-awq channel")).startswith("Unknown model demo-awq")
    assert app.engine.spec.name == "demo", "a pin never loads anything"


async def test_an_unknown_model_is_a_clear_error(app: App) -> None:
    reply = await app.commands.run(admin(), "model", "gpt-9")
    assert reply.startswith("Unknown model gpt-9. Known models: demo, demo-awq")
    assert app.engine.spec.name == "demo"


async def test_the_stored_choice_is_restored_at_start(app: App, settings: Settings) -> None:
    await app.commands.run(admin(), "model", "demo-awq")
    assert (await initial_model(app.store, app.models.registry, settings.model)).name == "demo-awq"


async def test_a_changed_hearth_model_wins_over_the_stored_choice(app: App, settings: Settings) -> None:
    await app.commands.run(admin(), "model", "demo-awq")
    changed = settings.model_copy(update={"model": "qwen2.5-0.5b"})
    assert (await initial_model(app.store, app.models.registry, changed.model)).name == "qwen2.5-0.5b"


async def test_persona_set_show_reset(app: App, adapter: RecordingAdapter) -> None:
    reply = await app.commands.run(admin(), "persona", "set You are {bot_name}, a pirate.")
    assert reply == "Persona set for this channel."
    assert "a pirate" in await app.commands.run(member(), "persona")

    await app.pipeline.handle(member("hello"), adapter)
    prompt = await app.personas.system_prompt(member())
    assert prompt.startswith("You are Hearth, a pirate.\n\n[hearth-canary-")

    assert (await app.commands.run(admin(), "persona", "reset")) == "Persona reset to the default."
    assert "a pirate" not in await app.commands.run(member(), "persona")


async def test_a_non_admin_cannot_change_the_persona(app: App) -> None:
    assert (await app.commands.run(member(), "persona", "set evil")).startswith("Sorry, only admins")
    assert (await app.commands.run(member(), "persona", "reset")).startswith("Sorry, only admins")
    assert await app.store.get_channel_persona(GROUP) is None


async def test_persona_survives_a_restart(app: App) -> None:
    await app.commands.run(admin(), "persona", "set Be brief.")
    await app.store.close()
    await app.store.open()
    assert await app.store.get_channel_persona(GROUP) == "Be brief."


async def test_reset_in_a_direct_chat_is_for_anyone(app: App, adapter: RecordingAdapter) -> None:
    dm = ConversationKey("telegram", "dm-someone")
    await app.pipeline.handle(member("hi", dm, direct=True), adapter)

    reply = await app.commands.run(member(key=dm, direct=True), "reset")
    assert reply == "Conversation forgotten (2 messages)."
    assert await app.store.history(dm) == []


async def test_a_single_forgotten_message_is_counted_in_the_singular(app: App) -> None:
    await app.store.add_message(GROUP, "user", "hi", author_id="u1", author_name="Alice")
    assert (await app.commands.run(admin(), "reset")) == "Conversation forgotten (1 message)."


async def test_persona_set_without_text_says_how_and_changes_nothing(app: App) -> None:
    before = await app.commands.run(member(), "persona")
    reply = await app.commands.run(admin(), "persona", "set")
    assert reply.startswith("Usage: /persona set TEXT") and "{channel_name}" in reply
    assert await app.store.get_channel_persona(GROUP) is None
    assert await app.commands.run(member(), "persona") == before


async def test_status_in_chinese_names_the_engines_state_in_chinese(app: App) -> None:
    status = await app.commands.run(admin("/status 状态"), "status", "状态")
    assert status.startswith("模型：demo（none），就绪")
    assert "ready" not in status


async def test_reset_in_a_group_is_for_admins(app: App, adapter: RecordingAdapter) -> None:
    await app.pipeline.handle(member("hi"), adapter)

    assert (await app.commands.run(member(), "reset")).startswith("Sorry, only admins")
    assert len(await app.store.history(GROUP)) == 2
    assert (await app.commands.run(admin(), "reset")) == "Conversation forgotten (2 messages)."


async def test_status_reports_model_queue_uptime_usage_cache(app: App, adapter: RecordingAdapter) -> None:
    await app.pipeline.handle(member("one two three"), adapter)

    status = await app.commands.run(member(), "status")

    assert "model: demo (none), ready" in status
    assert "queue: 0 waiting or running" in status
    assert "uptime: 0:00:0" in status
    assert "served: 1 replies, 5 tokens out" in status  # "echo: user-someone: one two three"
    assert "prefix-cache hit rate: 0.0%" in status
    assert "asleep" not in status


async def test_status_lists_the_models_asleep_for_a_quick_switch_back(app: App) -> None:
    app.models.stats().asleep = ("demo-awq",)  # as VllmEngine sets it after a switch on a GPU

    status = await app.commands.run(admin(), "status")

    assert "engine: 0 restarts; asleep for a quick switch back: demo-awq" in status


async def test_unknown_command_says_so_and_shows_help(app: App) -> None:
    reply = await app.commands.run(member(), "frobnicate")
    assert reply.startswith("I don't know that command.") and "/persona" in reply
    assert "frobnicate" not in reply


async def test_model_naming_the_served_model_restarts_it_when_it_is_down(
    settings: Settings, engine: FakeEngine
) -> None:
    supervised = Supervisor(engine, SupervisionPolicy(check_every_s=60, max_restarts=1, backoff_s=(0.01,)))
    async with open_app(settings, supervised) as app:
        engine.crash()
        assert supervised.stats().state != "ready" or not engine.alive()

        reply = await app.commands.run(admin(), "model", "demo")

        assert reply == "Now serving demo (none)."
        assert engine.alive() and engine.restarts == 1
        assert "engine: 1 restarts" in await app.commands.run(admin(), "status")


async def test_an_oversized_persona_is_refused_at_set_time_naming_the_limit(app: App) -> None:
    reply = await app.commands.run(admin(), "persona", "set " + "x" * 100_000)

    assert reply == "That persona is too long (100000 characters, the limit is 4000); nothing was changed."
    assert await app.store.get_channel_persona(GROUP) is None


async def test_a_persona_leaving_too_little_room_for_history_is_refused(app: App) -> None:
    """Under the character limit, but over half of the demo model's 1,536-token prompt budget."""
    reply = await app.commands.run(admin(), "persona", "set " + "word " * 790)

    assert reply.startswith("That persona is too long (") and "tokens, the limit is 768" in reply
    assert await app.store.get_channel_persona(GROUP) is None
    shorter = await app.commands.run(admin(), "persona", "set " + "word " * 100)
    assert shorter == "Persona set for this channel."


async def test_status_shows_a_member_no_engine_details(app: App) -> None:
    app.models.stats().last_error = "HTTP 401 (rejected)"

    shown = await app.commands.run(member(), "status")
    to_admin = await app.commands.run(admin(), "status")

    assert shown.startswith("model: demo (none)") and "uptime:" in shown
    assert "engine:" not in shown and "database:" not in shown and "401" not in shown
    assert "engine: 0 restarts, last error: HTTP 401 (rejected)" in to_admin
