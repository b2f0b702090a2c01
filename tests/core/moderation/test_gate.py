"""`LayeredGate` as a whole: the verdict's shape, the deciding layer, admin words."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from bot.messages import ConversationKey, Verdict, WordRule
from bot.moderation import Gate, GateConfig, LayeredGate, WordsAware
from bot.moderation.evaluate import load_eval
from bot.moderation.gate import CATEGORIES, verdict
from bot.store import MemoryStore
from tests.core.moderation import ROOM, invisible_code_points

OTHER_ROOM = ConversationKey("telegram", "other")


def test_the_layered_gate_is_a_gate_that_hears_about_word_changes() -> None:
    gate: Gate = LayeredGate(GateConfig())
    assert isinstance(gate, WordsAware)


async def test_a_verdict_has_every_openai_category_and_score() -> None:
    verdict = await LayeredGate(GateConfig()).check("hello", "input", ROOM)
    assert list(verdict.categories) == list(CATEGORIES) == list(verdict.category_scores)


async def test_a_sub_category_flags_its_parent_too() -> None:
    verdict = await LayeredGate(GateConfig()).check("I will kill you", "input", ROOM)
    assert verdict.categories["harassment/threatening"] and verdict.categories["harassment"]
    assert not verdict.categories["sexual"]


async def test_the_deciding_layer_and_action_are_recorded() -> None:
    gate = LayeredGate(GateConfig())
    blocked = await gate.check("傻逼", "input", ROOM)
    allowed = await gate.check("hello friend", "input", ROOM)
    assert (blocked.layer, blocked.action) == ("wordlist", "block")
    assert (allowed.layer, allowed.action) == ("classifier", "allow")


async def test_admin_words_added_at_run_time_take_effect() -> None:
    async with MemoryStore() as store:
        gate = LayeredGate(GateConfig(), store)
        assert not (await gate.check("pineapple pizza", "input", ROOM)).flagged
        await store.add_word(WordRule("telegram:room", "pineapple", "block", "hate"))
        gate.words_changed()
        verdict = await gate.check("pineapple pizza", "input", ROOM)
    assert (verdict.flagged, verdict.layer, verdict.categories["hate"]) == (True, "admin", True)


async def test_admin_words_are_normalised_like_the_lists() -> None:
    async with MemoryStore() as store:
        await store.add_word(WordRule("global", "pineapple", "block", "harassment"))
        gate = LayeredGate(GateConfig(), store)
        verdict = await gate.check("ｐｉｎｅ ａｐｐｌｅ? p1neapple!", "input", ROOM)
    assert verdict.flagged


async def test_a_chats_words_do_not_apply_in_another_chat() -> None:
    async with MemoryStore() as store:
        await store.add_word(WordRule("telegram:room", "pineapple", "block", "harassment"))
        gate = LayeredGate(GateConfig(), store)
        assert (await gate.check("pineapple", "input", ROOM)).flagged
        assert not (await gate.check("pineapple", "input", OTHER_ROOM)).flagged


async def test_global_words_apply_everywhere() -> None:
    async with MemoryStore() as store:
        await store.add_word(WordRule("global", "pineapple", "block", "harassment"))
        assert (await LayeredGate(GateConfig(), store).check("pineapple", "input", OTHER_ROOM)).flagged


async def test_an_admin_allow_lets_a_listed_word_through() -> None:
    async with MemoryStore() as store:
        await store.add_word(WordRule("telegram:room", "tmd", "allow"))
        assert not (await LayeredGate(GateConfig(), store).check("tmd 又卡了", "input", ROOM)).flagged


async def test_an_admin_allow_also_hides_the_word_from_the_classifier() -> None:
    async with MemoryStore() as store:
        await store.add_word(WordRule("telegram:room", "damn", "allow"))
        gate = LayeredGate(GateConfig(threshold=0.5), store)
        assert not (await gate.check("damn, nice idea", "input", ROOM)).flagged
        assert (await gate.check("damn, nice idea", "input", OTHER_ROOM)).flagged


async def test_a_mild_expletive_passes_at_the_default_threshold() -> None:
    assert not (await LayeredGate(GateConfig()).check("Damn, that's a good idea.", "input", ROOM)).flagged


# --- invisible characters --------------------------------------------------------


@pytest.mark.parametrize("text", ["傻\U000e0020逼", "you are a bi\U000e0020tch"])
async def test_a_tag_space_inside_an_insult_is_still_caught_by_the_word_lists(text: str) -> None:
    verdict = await LayeredGate(GateConfig()).check(text, "input", ROOM)
    assert (verdict.flagged, verdict.layer) == (True, "wordlist")


async def test_a_tag_space_cannot_hide_an_insult_from_the_classifier() -> None:
    gate = LayeredGate(GateConfig())
    plain = await gate.check("you ugly fat pig", "input", ROOM)
    hidden = await gate.check("you u\U000e0020gly f\U000e0020at p\U000e0020ig", "input", ROOM)
    assert (hidden.flagged, hidden.layer) == (True, "classifier")
    assert hidden.category_scores == plain.category_scores


async def test_no_invisible_code_point_hides_a_blocked_word() -> None:
    gate = LayeredGate(GateConfig())
    missed = [
        f"U+{ord(c):04X}" for c in invisible_code_points()
        if not (await gate.check(f"你是傻{c}逼", "input", ROOM)).flagged
        or not (await gate.check(f"you stupid bi{c}tch", "input", ROOM)).flagged
    ]
    assert missed == []


async def test_invisible_code_points_never_change_a_verdict_on_the_labelled_set() -> None:
    gate, items = LayeredGate(GateConfig()), load_eval()
    fillers = itertools.cycle(invisible_code_points())
    hidden = ["".join(ch + next(fillers) for ch in item.text) for item in items]
    assert sum(len(item.text) for item in items) >= len(invisible_code_points())  # each one used
    changed = [
        item.text for item, text in zip(items, hidden, strict=True)
        if _decision(await gate.check(item.text, "input", ROOM))
        != _decision(await gate.check(text, "input", ROOM))
    ]
    assert changed == []


@pytest.mark.parametrize("text", [
    "Family photo 👨\u200d👩\u200d👧\u200d👦 and the flag 🏳\ufe0f\u200d🌈!",
    "שָׁלוֹם עֲלֵיכֶם", "مَرْحَبًا بِكُمْ", "می\u200cخواهم بروم", "नमस्ते, आप कैसे हैं?", "今天天气很好，我们去公园吧。",
])
async def test_ordinary_text_in_any_script_is_allowed(text: str) -> None:
    assert not (await LayeredGate(GateConfig()).check(text, "input", ROOM)).flagged


def _decision(verdict: Verdict) -> tuple[bool, str, dict[str, bool]]:
    return verdict.flagged, verdict.layer, verdict.categories


async def test_a_long_text_is_judged_off_the_event_loop_and_the_same_as_on_it() -> None:
    """A 16,000-character input held every channel for 10-18 ms while judged on the loop."""
    gate = LayeredGate(GateConfig())
    await gate.load()
    long_text = ("a perfectly friendly sentence about the weather " * 400)[:16000]
    task = asyncio.ensure_future(gate.check(long_text, "input", ROOM))
    turns = 0
    while not task.done():  # the loop stays free: other work gets its turns meanwhile
        turns += 1
        await asyncio.sleep(0)
    assert turns > 1
    on_loop = await gate.check(long_text[:1990], "input", ROOM)
    assert task.result().flagged is on_loop.flagged is False
    flagged = await gate.check(long_text + " I will kill you", "input", ROOM)
    assert flagged.flagged, "a flag found in a worker thread counts the same"


def test_a_verdict_has_every_category_and_flags_parents_of_what_it_flags() -> None:
    """OpenAI's shape: every category present, rounded scores, a sub-category's parent flagged with it."""
    found = verdict("wordlist", {"harassment/threatening": 0.12345678, "not-a-category": 1.0}, True,
                    ["harassment/threatening"])
    assert list(found.categories) == list(found.category_scores) == list(CATEGORIES)
    assert {c for c, on in found.categories.items() if on} == {"harassment", "harassment/threatening"}
    assert found.category_scores["harassment/threatening"] == 0.123457
    assert sum(found.category_scores.values()) == 0.123457
    allowed = verdict("classifier", {"harassment": 0.2}, False, ["harassment"])
    assert not any(allowed.categories.values()) and allowed.category_scores["harassment"] == 0.2
