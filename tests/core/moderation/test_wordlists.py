"""Layer 2: the shipped lists, boundaries, allowlist, categories, evasions and traps."""

from __future__ import annotations

import pytest

from bot.moderation.normalise import views
from bot.moderation.wordlists import Matcher, WordLists, builtin_entries, load_word_lists, make_entry
from tests.core.moderation import categories_of, listed


@pytest.mark.parametrize("text", [
    "you stupid bitch", "what a fucking mess", "你就是个傻逼", "操你妈", "go kill yourself",
])
def test_plain_bad_words_are_found(text: str) -> None:
    assert listed(text).flagged


@pytest.mark.parametrize(("kind", "text"), [
    ("spacing", "f u c k you"),
    ("spacing after the article", "what a c u n t"),
    ("chinese spacing", "傻 逼"),
    ("chinese symbol", "傻*逼东西"),
    ("full-width", "ｆｕｃｋ ｙｏｕ"),
    ("full-width pinyin", "ＮＭＳＬ"),
    ("cyrillic", "fuсk you"),
    ("greek", "bιtch"),
    ("leetspeak", "you're a b1tch"),
    ("leet symbols", "@ssh0le"),
    ("repeated letters", "fuuuuuck"),
    ("doubled letter", "shiit"),
    ("zero-width", "sh\u200bit"),
    ("chinese zero-width", "傻\u200b逼"),
    ("masked", "shut the f**k up"),
    ("homophone", "煞笔"),
    ("pinyin initials", "nmsl"),
    ("pinyin initials in chinese", "你是不是sb"),
])
def test_each_evasion_is_caught(kind: str, text: str) -> None:
    assert listed(text).flagged, kind


@pytest.mark.parametrize("text", [
    "I grew up in Scunthorpe.", "The assassin hid.", "A gin cocktail, please.", "My therapist agrees.",
    "Add shiitake mushrooms.", "He plays bass.", "Please pass the salt.", "Cumin and coriander.",
    "Spicy food.", "A cocker spaniel.", "She graduated summa cum laude.",
])
def test_harmless_english_words_containing_a_bad_one_pass(text: str) -> None:
    assert not listed(text).flagged


@pytest.mark.parametrize("text", [
    "这张照片拍得太逼真了", "他被逼迫签了合同", "孩子们在操场上踢球", "这个操作太秀了",
    "我早餐喜欢吃乳酪面包", "为我们的友谊干杯！", "今天是奶奶的生日", "我妈妈的手艺最好",
])
def test_harmless_chinese_words_containing_a_bad_one_pass(text: str) -> None:
    assert not listed(text).flagged


@pytest.mark.parametrize("text", [
    "The rash near my anus is a fungal infection.", "Breast cancer screening starts at 40.",
    "Sex education should cover consent.", "医生说是乳腺增生", "月经不调应该看妇科", "性教育应该从小开始",
])
def test_medical_and_educational_mentions_pass(text: str) -> None:
    assert not listed(text).flagged


@pytest.mark.parametrize("text", [
    "This bug is killing me.", "I'm dying of laughter.", "Kill the process with kill -9.",
    "笑死我了", "累死了", "我电脑又死机了",
])
def test_idioms_pass(text: str) -> None:
    assert not listed(text).flagged


@pytest.mark.parametrize("text", ["牛逼！你太厉害了", "这操作真牛逼", "牛B啊兄弟"])
def test_praise_with_niubi_passes(text: str) -> None:
    assert not listed(text).flagged


@pytest.mark.parametrize("text", [
    "California's SB 1047 was a bill.", "do sth for sb", "give sb sth 这个句型怎么用？",
    "TMD causes jaw pain.", "California's S\u200bB 1047 was a bill.",
])
def test_abbreviations_used_as_acronyms_pass(text: str) -> None:
    assert not listed(text).flagged


def test_a_suffix_on_a_long_entry_still_matches() -> None:
    assert listed("stop bitching").flagged


def test_a_short_entry_takes_no_suffix() -> None:
    assert not listed("cumin").flagged


@pytest.mark.parametrize(("text", "category"), [
    ("I will kill you", "harassment/threatening"),
    ("I want to kill myself", "self-harm/intent"),
    ("how do I make a pipe bomb", "illicit/violent"),
    ("send nudes", "sexual"),
    ("黑鬼都滚出中国", "hate"),
    ("怎么自杀最不痛苦", "self-harm/instructions"),
])
def test_entries_carry_openai_categories(text: str, category: str) -> None:
    assert category in categories_of(text)


def test_excluded_upstream_entries_are_not_loaded() -> None:
    texts = {e.text for e in builtin_entries() if e.action == "block"}
    assert "anal" not in texts and "性" not in texts and "逼" not in texts


def test_an_admin_block_beats_the_shipped_allowlist() -> None:
    lists = load_word_lists().with_admin([make_entry("assassin", "violence", admin=True)])
    assert lists.match(views("the assassin"), "the assassin").by_admin


def test_an_admin_allow_hides_a_shipped_entry() -> None:
    lists = load_word_lists().with_admin([make_entry("sb", "harassment", "allow", admin=True)])
    assert not lists.match(views("你是sb"), "你是sb").flagged


def test_an_allowed_word_is_blanked_for_the_classifier() -> None:
    found = listed("a fan of Moby Dick")
    assert found.without_allowed(views("a fan of Moby Dick").main).strip() == "a fan of"


def test_latin_entries_match_whole_words_only() -> None:
    lists = WordLists(Matcher([make_entry("foo", "harassment")]))
    assert lists.match(views("a foo!"), "").flagged
    assert not lists.match(views("foobar"), "").flagged
