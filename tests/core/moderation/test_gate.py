"""`LayeredGate` as a whole: the verdict's shape, the deciding layer, admin words."""

from __future__ import annotations

from bot.messages import ConversationKey, WordRule
from bot.moderation import Gate, GateConfig, LayeredGate, WordsAware
from bot.moderation.gate import CATEGORIES
from bot.store import MemoryStore
from tests.core.moderation import ROOM

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
