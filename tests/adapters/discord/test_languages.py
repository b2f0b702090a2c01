"""Every command of the table answers in its user's language on Discord: a slash command from a
Discord set to Chinese (`locale: zh-CN`) gets Chinese, even for `/reset` or `/model demo`;
one set to English gets English."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.registry import Registry
from tests.adapters.discord.harness import answered, running
from tests.adapters.discord.payloads import ADMIN_ID, Json
from tests.languages import commands, in_language

LOCALES = {"en": "en-US", "zh": "zh-CN"}


def options(name: str, args: str) -> list[Json]:
    """The slash options Discord would send for `/name args` (as this test's commands use them)."""
    verb, _, rest = args.partition(" ")
    if name == "model" and args:
        return [{"name": "name", "type": 3, "value": args}]
    if name == "hearth-channel":
        return [{"name": "mode", "type": 3, "value": args}]
    if name in ("persona", "quota", "access") and not verb:  # Discord makes them pick a verb
        return [{"name": "show", "type": 1, "options": []}]
    if name in ("persona", "moderation") and verb:
        option = {"persona": "text", "moderation": "word"}[name]
        values = [{"name": option, "type": 3, "value": rest}] if rest else []
        return [{"name": verb, "type": 1, "options": values}]
    return []


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_every_command_answers_in_the_users_language(
    tmp_path: Path, registry: Registry, lang: str
) -> None:
    async with running(tmp_path, registry, admin_ids=f"discord:{ADMIN_ID}") as hearth:
        wrong = []
        for name, args in commands(lang):
            locale = LOCALES[lang]
            command = await hearth.fake.slash(name, options(name, args), author=ADMIN_ID, locale=locale)
            reply = await answered(command, hearth.fake)
            if not in_language(reply, lang):
                wrong.append((name, args, reply[:100]))
    assert wrong == []
