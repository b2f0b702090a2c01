"""The persona prompt: placeholders filled, other braces kept, stable for the prefix cache."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from bot.persona import DEFAULT_PERSONA, PersonaContext, render_persona

DAY = dt.date(2026, 11, 22)
CJK = re.compile(r"[\u4e00-\u9fff]")
CLOCK = re.compile(r"\d{1,2}:\d{2}")
ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def context(platform: str = "discord", channel_name: str = "general") -> PersonaContext:
    return PersonaContext(bot_name="Hearth", platform=platform, channel_name=channel_name, date=DAY)


def test_placeholders_are_filled() -> None:
    template = "{bot_name} | {platform} | {channel_name} | {date}"
    assert render_persona(template, context()) == "Hearth | Discord | general | 2026-11-22"


def test_default_persona_leaves_no_placeholder() -> None:
    rendered = render_persona(DEFAULT_PERSONA, context())
    assert not re.search(r"\{(bot_name|platform|channel_name|date)\}", rendered)


def test_date_is_an_iso_day() -> None:
    rendered = render_persona(DEFAULT_PERSONA, context())
    assert set(ISO_DAY.findall(rendered)) == {"2026-11-22"}


def test_no_time_of_day_in_the_prompt() -> None:
    rendered = render_persona(DEFAULT_PERSONA, context())
    assert not CLOCK.search(rendered)


def test_unknown_braces_are_left_untouched() -> None:
    assert render_persona("{foo} and {bot_name}", context()) == "{foo} and Hearth"


def test_json_braces_are_left_untouched() -> None:
    template = 'Answer as {"a": 1, "name": "{bot_name}"}'
    assert render_persona(template, context()) == 'Answer as {"a": 1, "name": "Hearth"}'


def test_default_persona_has_chinese() -> None:
    assert CJK.search(DEFAULT_PERSONA)


def test_default_persona_has_english() -> None:
    assert "You are {bot_name}" in DEFAULT_PERSONA


@pytest.mark.parametrize(
    ("platform", "shown"),
    [("discord", "Discord"), ("telegram", "Telegram"), ("terminal", "the terminal"), ("matrix", "matrix")],
)
def test_platform_display_name(platform: str, shown: str) -> None:
    assert render_persona("{platform}", context(platform=platform)) == shown


def test_empty_channel_name_reads_as_a_private_chat() -> None:
    assert render_persona("{channel_name}", context(channel_name="")) == "a private chat"


def test_rendering_twice_on_the_same_day_is_byte_identical() -> None:
    first = render_persona(DEFAULT_PERSONA, context()).encode("utf-8")
    second = render_persona(DEFAULT_PERSONA, context()).encode("utf-8")
    assert first == second
