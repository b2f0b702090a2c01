"""Layer 1: every evasion becomes the plain word; ordinary text stays readable."""

from __future__ import annotations

import random
import re

import pytest
import regex

from bot.moderation.leak import leak_form
from bot.moderation.normalise import (
    ENCLOSING,
    canonical,
    collapse_runs,
    collapse_whitespace,
    fold,
    normalise,
    shorten_runs,
    unleet,
    views,
)
from tests.core.moderation import invisible_code_points


def test_full_width_letters_become_ascii() -> None:
    assert normalise("ｆｕｃｋ ＹＯＵ") == "fuck you"


def test_zero_width_characters_are_removed() -> None:
    assert normalise("f\u200bu\u200cc\u200dk\u2060s\ufeff") == "fucks"


def test_a_tag_space_is_removed() -> None:
    assert (normalise("傻\U000e0020逼"), normalise("bi\U000e0020tch")) == ("傻逼", "bitch")


def test_no_invisible_code_point_splits_a_word() -> None:
    invisible = invisible_code_points()
    hidden = " ".join(f"sh{c}it 傻{c}逼 fu{c}ck{c}ing" for c in invisible)
    assert views(hidden) == views(" ".join("shit 傻逼 fucking" for _ in invisible))


def test_an_invisible_character_between_a_letter_and_its_accent_does_not_keep_the_accent() -> None:
    assert fold("fu\u200bc\u034f\u0301k") == "fuck"


def test_bidi_controls_are_removed() -> None:
    assert normalise("sh\u202eit\u202c\u200e") == "shit"


def test_case_is_folded() -> None:
    assert normalise("BiTcH") == "bitch"


def test_cyrillic_look_alikes_fold_to_latin() -> None:
    assert normalise("fuсk аsshоle") == "fuck asshole"  # с, а, о are Cyrillic


def test_greek_look_alikes_fold_to_latin() -> None:
    assert normalise("bιtch cunτ") == "bitch cunt"


def test_accents_are_stripped() -> None:
    assert fold("fück sh\u0069\u0301t") == "fuck shit"


def test_leetspeak_inside_words_is_read_as_letters() -> None:
    assert normalise("sh1t f4ck @ss b!tch y0u $hit") == "shit fack ass bitch you shit"


def test_leetspeak_leaves_numbers_and_model_names_alone() -> None:
    assert unleet("call 555 0100 about the a55 and mp3") == "call 555 0100 about the a55 and mpe"


def test_an_exclamation_mark_after_a_word_is_punctuation() -> None:
    assert unleet("wow!") == "wow!"


def test_long_runs_of_a_letter_shorten_to_two() -> None:
    assert normalise("fuuuuuck shiiiit asssss") == "fuuck shiit ass"


def test_the_collapsed_view_has_single_letters() -> None:
    assert views("fuuuck you").collapsed == "fuck you"


def test_latin_letters_typed_apart_are_joined() -> None:
    assert normalise("f u c k you, s.h.i.t, f-u-c-k, b_i_t_c_h") == "fuck you, shit, fuck, bitch"


def test_two_single_letters_are_not_joined() -> None:
    assert normalise("a b testing") == "a b testing"


def test_a_spaced_word_after_the_article_a_gets_a_view_of_its_own() -> None:
    assert views("what a c u n t").split == "what a cunt"


def test_chinese_characters_typed_apart_are_joined() -> None:
    assert normalise("傻 逼 傻*逼 傻.逼 傻 b") == "傻逼傻逼傻逼傻b"


def test_chinese_sentence_punctuation_is_not_a_separator() -> None:
    assert normalise("他很傻，逼得我没办法") == "他很傻,逼得我没办法"


def test_ordinary_text_is_unchanged_but_for_case() -> None:
    assert normalise("Hello there, how are you today?") == "hello there, how are you today?"


# --- one normal form for every layer: what fonts, platforms and scripts draw as the word ----


def test_the_enclosing_marks_are_every_one_unicode_has() -> None:
    marks = {chr(c) for c in range(0x110000) if regex.match(r"\p{Me}", chr(c))}
    assert {c for c in marks if ENCLOSING.match(c)} == marks


@pytest.mark.parametrize(("evasion", "word"), [
    ("ꜰᴜᴄᴋ ʏᴏᴜ", "fuck you"),  # small capitals (TR39 skeleton)
    ("🇫🇺🇨🇰 you", "fuck you"),  # regional-indicator letters
    ("⒡⒰⒞⒦ you", "fuck you"),  # parenthesised letters
    ("🅕🅤🅒🅚 you", "fuck you"),  # negative circled letters
    ("𝐟𝐮𝐜𝐤 you", "fuck you"),  # mathematical bold
    ("f,u,c,k you", "fuck you"),  # punctuation between letters
    ("f🙂u🙂c🙂k you", "fuck you"),  # emoji between letters
    ("傻🙂逼", "傻逼"),
    ("sh1️⃣t head", "shit head"),  # a keycap digit, then leetspeak
    ("幹你娘", "干你娘"),  # traditional Chinese read as simplified (OpenCC)
])
def test_an_evasion_reads_as_the_word(evasion: str, word: str) -> None:
    assert normalise(evasion) == word


@pytest.mark.parametrize("marked", ["fu||ck|| you", "__f__uck you", "**f**uck you", "~~f~~uck you"])
def test_markup_a_platform_renders_away_has_a_view_without_it(marked: str) -> None:
    assert views(marked).unmarked == "fuck you"


def test_a_lone_flag_stays_a_flag() -> None:
    assert normalise("🇸🇧 and 🇨🇳") == "🇸🇧 and 🇨🇳"  # not "sb": a flag of the Solomon Islands


def test_a_comma_between_chinese_clauses_does_not_join_them() -> None:
    assert normalise("我真傻，逼着自己加班") == "我真傻,逼着自己加班"


def test_separators_must_repeat_to_join_letters() -> None:
    assert normalise("s.h.i.t, f-u-c-k") == "shit, fuck"


def test_ascii_is_not_read_by_the_skeleton() -> None:
    assert canonical('THIS "is" a|b `code`') == 'this "is" a|b `code`'


def test_the_leak_check_reads_the_same_normal_form() -> None:
    assert leak_form("ꜱᴇᴄʀᴇᴛ 幹 — SECRET 干") == leak_form("secret 干 secret 干")


def test_collapsing_whitespace_agrees_with_the_regular_expression_on_every_character() -> None:
    """`collapse_whitespace` stands for `re.sub(r"\\s+", " ", text).strip()`: the same on each
    Basic Multilingual Plane character, alone, doubled and between letters."""
    whitespace = re.compile(r"\s+")
    for code in range(0x10000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        c = chr(code)
        for text in (f"a{c}b", f"{c}{c}a {c}", c):
            assert collapse_whitespace(text) == whitespace.sub(" ", text).strip(), hex(code)


def test_runs_are_shortened_and_collapsed_as_the_plain_rewrites_do() -> None:
    """Runs are rewritten by deleting what lookahead finds (no template per run): the same
    text as the plain rewrites, three or more of a letter as two and any run as one, on
    random text of few letters (many runs), digits, CJK and spaces."""
    rng = random.Random(5)
    alphabet = "aab sss 1 0o 中中 ZZz-"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        assert shorten_runs(text) == re.sub(r"([a-z])\1{2,}", r"\1\1", text)
        assert collapse_runs(text) == re.sub(r"([a-z])\1+", r"\1", text)
    assert (shorten_runs("shiiiit asssss"), collapse_runs("fuuck aa")) == ("shiit ass", "fuck a")
