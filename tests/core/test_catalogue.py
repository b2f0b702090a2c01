"""One bilingual catalogue: every text Hearth writes exists in English and Chinese, with the
same placeholders, and every command answers in its user's language (here on the terminal;
tests/adapters/*/test_languages.py on Telegram and Discord)."""

from __future__ import annotations

import io
import string
from pathlib import Path

import pytest

from adapters.telegram.commands import INTRO, START_HELP
from adapters.terminal import TerminalAdapter
from bot import i18n
from bot.app.builder import App
from bot.app.settings import Settings
from bot.commands import Text
from bot.commands import texts as command_texts
from bot.commands.privacy import DONE, EXPLAIN, HELP, OPTION
from tests.conftest import make_settings
from tests.fakes import RecordingAdapter
from tests.languages import CJK, commands, in_language


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The terminal's user is an operator here, so that every command answers."""
    return make_settings(tmp_path, admin_ids="terminal:local")


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def every_text(app: App) -> dict[str, Text]:
    """The core's texts, the commands' replies, and every help text of the table."""
    found = {f"i18n.{k}": Text(v["en"], v["zh"]) for k, v in i18n.TEXTS.items()}
    found |= {f"commands.{k}": v for k, v in command_texts.TEXTS.items()}
    found |= {"telegram.intro": INTRO, "telegram.start": START_HELP, "forget-me.help": HELP,
              "forget-me.option": OPTION, "forget-me.explain": EXPLAIN, "forget-me.done": DONE}
    for command in app.commands:
        found[f"/{command.name}"] = command.help
        found |= {f"/{command.name} {o.name}": o.help for o in command.options}
        for sub in command.subcommands:
            found[f"/{command.name} {sub.name}"] = sub.help
            found |= {f"/{command.name} {sub.name} {o.name}": o.help for o in sub.options}
    return found


def test_every_text_has_both_languages_with_the_same_placeholders(app: App) -> None:
    texts = every_text(app)

    assert len(texts) > 100
    missing = [k for k, t in texts.items() if not t.en.strip() or not CJK.search(t.zh)]
    assert missing == []
    differing = [k for k, t in texts.items() if placeholders(t.en) != placeholders(t.zh)]
    assert differing == []


def test_every_i18n_key_has_exactly_english_and_chinese() -> None:
    assert [k for k, v in i18n.TEXTS.items() if set(v) != {"en", "zh"}] == []


async def chat(app: App, text: str) -> str:
    out = io.StringIO()
    await TerminalAdapter(app.pipeline, app.commands, io.StringIO(text), out).run()
    return out.getvalue()


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_every_command_answers_in_the_users_language_on_the_terminal(app: App, lang: str) -> None:
    """The terminal has no app language: the language the user last wrote in decides."""
    await chat(app, "你好，今天怎么样？\n" if lang == "zh" else "hello, how are you?\n")

    wrong = []
    for name, args in commands(lang):
        reply = await chat(app, f"/{name} {args}".strip() + "\n")
        if not in_language(reply, lang):
            wrong.append((name, args, reply[:120]))
    assert wrong == []


def test_a_command_alone_follows_the_app_language_then_what_the_user_writes() -> None:
    from bot.messages import ConversationKey, IncomingMessage

    locale = i18n.Locale()
    zh_app = IncomingMessage(ConversationKey("telegram", "1"), "7", "A", "/reset", "1", language="zh-hans")
    assert locale.of_command(zh_app, "") == "zh"
    assert locale.of_command(zh_app, "demo") == "zh"  # a model name is no language
    wrote = IncomingMessage(ConversationKey("telegram", "1"), "7", "A", "hi there", "2", language="zh-hans")
    assert locale.of_message(wrote) == "en"
    assert locale.of_command(zh_app, "") == "en"  # what they wrote last


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_a_commands_error_answers_in_the_users_language(app: App, lang: str) -> None:
    """Refusals and errors follow the author too, not the command's own Latin letters."""
    from bot.messages import ConversationKey, IncomingMessage

    await chat(app, "你好，今天怎么样？\n" if lang == "zh" else "hello, how are you?\n")
    unknown = await chat(app, "/model nosuch\n")
    assert "nosuch" in unknown and in_language(unknown, lang)

    group = ConversationKey("telegram", "-100")
    said = IncomingMessage(group, "9", "B", "你好，机器人" if lang == "zh" else "hello there, bot", "1")
    await app.pipeline.handle(said, RecordingAdapter())  # B writes in the group, then, not an admin:
    refused = await app.commands.run(IncomingMessage(group, "9", "B", "/reset", "2"), "reset")
    assert "/reset" in refused and in_language(refused, lang)
