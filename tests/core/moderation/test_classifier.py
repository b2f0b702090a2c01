"""Layer 3: the English classifier, read from alt-profanity-check's shipped model."""

from __future__ import annotations

import pytest

from bot.moderation import GateConfig, LayeredGate
from bot.moderation.classifier import FEW_COLUMNS, TOKEN, ProfanityModel, load_model
from tests.core.moderation import ROOM

SAMPLES = ["you are an absolute idiot", "have a lovely day", "", "这是中文", "what the hell", "damn it"]
# Scored by numpy, not in plain Python: more known words than FEW_COLUMNS.
LONG_SAMPLES = [
    "the quick brown fox jumps over the lazy dog while people watch from their windows and laugh "
    "at every single thing happening outside because nothing else seems interesting today, so they "
    "keep looking until evening comes and the idiot neighbour starts singing terrible music again",
    "lovely garden river mountain music coffee bread morning friend family holiday summer winter "
    "school teacher doctor kitchen window street market ocean forest flower city village road "
    "train station library",
]


def test_scores_match_alt_profanity_check_exactly() -> None:
    from profanity_check import predict_prob

    model = load_model()
    assert all(_known_words(model, t) > FEW_COLUMNS for t in LONG_SAMPLES)
    expected = predict_prob(SAMPLES + LONG_SAMPLES)
    assert [model.score(t) for t in SAMPLES + LONG_SAMPLES] == pytest.approx(list(expected), abs=1e-9)


def _known_words(model: ProfanityModel, text: str) -> int:
    words = set(TOKEN.findall(text.lower())) - model.stop_words
    return len(words & model.vocabulary.keys())


def test_an_english_insult_scores_high_and_a_greeting_low() -> None:
    model = load_model()
    assert model.score("you are a pathetic moron") > 0.95
    assert model.score("good morning, how are you?") < 0.1


async def test_the_classifier_flags_an_insult_no_list_has() -> None:
    verdict = await LayeredGate(GateConfig()).check("you are the dumbest moron alive", "input", ROOM)
    assert (verdict.flagged, verdict.layer) == (True, "classifier")


async def test_the_threshold_is_configurable() -> None:
    text = "what the hell happened to my code?"  # scores about 0.43
    strict = await LayeredGate(GateConfig(threshold=0.3)).check(text, "input", ROOM)
    lenient = await LayeredGate(GateConfig(threshold=0.95)).check(text, "input", ROOM)
    assert strict.flagged and not lenient.flagged


async def test_chinese_text_is_not_given_to_the_english_classifier() -> None:
    verdict = await LayeredGate(GateConfig(threshold=0.01)).check("今天天气很好", "input", ROOM)
    assert not verdict.flagged and verdict.category_scores["harassment"] == 0.0
