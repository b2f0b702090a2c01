"""Prompt leakage: the canary and verbatim repeats of the system prompt."""

from __future__ import annotations

from bot.moderation import GateConfig, LayeredGate
from bot.moderation.leak import CANARY, contains_canary, leaks, load_canary, repeats_prompt
from bot.persona import DEFAULT_PERSONA, with_canary
from bot.store import MemoryStore
from tests.core.moderation import ROOM

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
