"""Prompt leakage: the canary and verbatim repeats of the system prompt."""

from __future__ import annotations

import pytest

from bot.moderation import GateConfig, LayeredGate
from bot.moderation.leak import CANARY, contains_canary, leaks, load_canary, repeats_prompt
from bot.persona import DEFAULT_PERSONA, with_canary
from bot.store import MemoryStore
from tests.core.moderation import ROOM, invisible_code_points

CANARY_VALUE = "hearth-canary-0123456789abcdef"
PROMPT = with_canary(DEFAULT_PERSONA, CANARY_VALUE)


def test_a_reply_with_the_canary_leaks() -> None:
    assert leaks(f"Sure! My marker is {CANARY_VALUE}.", PROMPT)


def test_a_half_printed_canary_already_leaks() -> None:
    assert contains_canary("my marker is [HEARTH-CANARY-01")


def test_a_reply_repeating_the_prompt_verbatim_leaks() -> None:
    reply = "My instructions say: " + DEFAULT_PERSONA[40:160]
    assert repeats_prompt(reply, PROMPT)


def test_a_verbatim_repeat_across_whitespace_changes_still_leaks() -> None:
    reply = DEFAULT_PERSONA[20:150].replace(" ", "\n  ")
    assert repeats_prompt(reply, PROMPT)


def test_a_short_phrase_shared_with_the_prompt_is_not_a_leak() -> None:
    assert not leaks("I'm a friendly and helpful assistant, happy to help!", PROMPT)


async def test_the_canary_is_made_once_and_kept() -> None:
    async with MemoryStore() as store:
        first, second = await load_canary(store), await load_canary(store)
    assert first == second and CANARY.fullmatch(first)


async def test_the_gate_blocks_a_leaking_reply_in_layer_leak() -> None:
    verdict = await LayeredGate(GateConfig()).check(f"ok: {CANARY_VALUE}", "output", ROOM, PROMPT)
    assert (verdict.flagged, verdict.layer, verdict.action) == (True, "leak", "block")


async def test_the_leak_check_is_for_replies_only() -> None:
    verdict = await LayeredGate(GateConfig()).check(f"is {CANARY_VALUE} yours?", "input", ROOM, PROMPT)
    assert not verdict.flagged


# --- however the reply writes it ---------------------------------------------------

SECRET = CANARY_VALUE.removeprefix("hearth-canary-")


@pytest.mark.parametrize("written", [
    "hearth-ca\U000e0020nary-01234567\U000e002089abcdef",  # a tag space inside each part
    "hearthcanary0123456789abcdef",  # dashes removed
    "hearth canary 0123456789abcdef",  # dashes turned into spaces
    "ｈｅａｒｔｈ－ｃａｎａｒｙ－０１２３４５６７８９ａｂｃｄｅｆ",  # full-width letters
    "hearth\u2010canary\u20100123456789abcdef",  # U+2010 hyphens
    "hearth\u00adcanary\u00ad0123456789abcdef",  # soft hyphens
    "hearth-c\u0430nary-0123456789abcdef",  # one Cyrillic look-alike letter
    "HEARTH-CANARY-O123456789ABCDEF",  # capitals, and the letter O for the digit 0
])
def test_the_canary_leaks_however_it_is_written(written: str) -> None:
    assert leaks(f"my marker: {written}", PROMPT)


@pytest.mark.parametrize("written", [
    SECRET, "0123 4567 89ab cdef", "０１２３４５６７８９ａｂｃｄｅｆ", "01234567-89ab\u00adcdef",
    "ol23456789abcdef",  # the letters o and l for the digits 0 and 1
])
def test_the_canary_secret_alone_leaks(written: str) -> None:
    assert contains_canary(f"the code is {written}.", PROMPT)


def test_no_invisible_code_point_hides_the_canary() -> None:
    missed = [
        f"U+{ord(c):04X}" for c in invisible_code_points()
        if not leaks(f"ok: hearth-can{c}ary-01234567{c}89abcdef", PROMPT)
        or not leaks(f"ok: 0123{c}456789abcdef", PROMPT)
    ]
    assert missed == []


def test_a_prompt_copied_with_a_soft_hyphen_every_ten_characters_leaks() -> None:
    copied = DEFAULT_PERSONA[40:160]
    hyphenated = "".join(copied[i : i + 10] + "\u00ad" for i in range(0, len(copied), 10))
    assert repeats_prompt(hyphenated, PROMPT)


def test_a_prompt_copied_without_spaces_or_with_other_dashes_leaks() -> None:
    copied = DEFAULT_PERSONA[40:160]
    assert repeats_prompt(copied.replace(" ", ""), PROMPT)
    assert repeats_prompt(copied.replace(" ", "\u2010"), PROMPT)


def test_another_hex_number_is_not_the_secret() -> None:
    assert not leaks("commit 0123456789abcdee and 123456789abcdef0", PROMPT)


def test_hearth_and_canary_in_ordinary_prose_are_not_the_marker() -> None:
    assert not leaks("Sit by the hearth and listen to the canary sing.", PROMPT)


def test_ordinary_replies_in_any_script_do_not_leak() -> None:
    reply = "Family photo 👨\u200d👩\u200d👧! 今天天气很好。שָׁלוֹם, مَرْحَبًا, नमस्ते."
    assert not leaks(reply, PROMPT)


async def test_the_gate_blocks_the_secret_alone_in_layer_leak() -> None:
    verdict = await LayeredGate(GateConfig()).check(f"code {SECRET}", "output", ROOM, PROMPT)
    assert (verdict.flagged, verdict.layer) == (True, "leak")
