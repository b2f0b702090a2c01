"""`LayeredGate`: Hearth's moderation, cheapest layer first.

    leak (replies) → normalise → word lists (admin words first) → classifier → guard

Every layer reads the text without its invisible characters (`invisible.strip_invisible`,
called inside the leak and normalise steps, and here for the guard model's input).

The first layer that flags decides (`Verdict.layer`); an allowed verdict names
the last layer consulted. Layers 1–3 take about half a millisecond for a short
message, so they run on the event loop; for a text over OFFLOAD_CHARS (a 16,000-
character input took 10–18 ms, every channel waiting meanwhile) they run in a
worker thread, as does loading the lists and the model (about a second, once).
Admin words are read from the store when first needed and again after
`words_changed()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from bot.messages import ConversationKey, Verdict, WordRule
from bot.moderation.base import Direction
from bot.moderation.classifier import ProfanityModel, load_model
from bot.moderation.guard import FailMode, GuardLayer
from bot.moderation.invisible import strip_invisible
from bot.moderation.leak import leaks
from bot.moderation.normalise import canonical, has_latin, views
from bot.moderation.wordlists import Entry, ListMatch, WordLists, load_word_lists, make_entry

GLOBAL_SCOPE = "global"
OFFLOAD_CHARS = 2000  # longer texts are judged in a worker thread (about 1 ms and up here)
CLASSIFIER_CATEGORY = "harassment"
# OpenAI's moderation categories, in its order; a sub-category implies its parent.
CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
    "illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions",
    "sexual", "sexual/minors", "violence", "violence/graphic",
)


class WordSource(Protocol):
    async def words(self) -> list[WordRule]: ...


@dataclass(frozen=True, slots=True)
class GateConfig:
    threshold: float = 0.95
    guard_fail: FailMode = "closed"


def scope_of(key: ConversationKey) -> str:
    """Admin words are kept per chat: a Discord channel (its threads included), a Telegram chat."""
    return f"{key.platform}:{key.channel}"


def verdict(
    layer: str, scores: dict[str, float], flagged: bool, flagged_categories: Iterable[str] = ()
) -> Verdict:
    """A verdict in OpenAI's shape: every category present, sub-categories implying parents."""
    full_scores = dict.fromkeys(CATEGORIES, 0.0)  # most are 0: only the given ones rounded
    for category, score in scores.items():
        if category in full_scores:
            full_scores[category] = round(score, 6)
    categories = dict.fromkeys(CATEGORIES, False)
    if flagged:
        for name in flagged_categories:
            categories.update({c: True for c in (name, name.split("/")[0]) if c in categories})
    return Verdict(flagged, layer, categories, full_scores, "block" if flagged else "allow")


def _with_parents(categories: Iterable[str], score: float) -> dict[str, float]:
    return {c: score for name in categories for c in (name, name.split("/")[0])}


class LayeredGate:
    """The bilingual layered filter; see the module docstring."""

    def __init__(
        self,
        config: GateConfig,
        words: WordSource | None = None,
        guard: GuardLayer | None = None,
    ) -> None:
        self._config = config
        self._words = words
        self._guard = guard
        self._lock = asyncio.Lock()
        self._lists: WordLists | None = None
        self._model: ProfanityModel | None = None
        self._rules: list[WordRule] = []
        self._stale = True  # the admin words must be (re)read from the store
        self._scoped: dict[str, WordLists] = {}

    async def __aenter__(self) -> LayeredGate:
        await self.load()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def load(self) -> None:
        """Load the lists and the model (once, in worker threads) and the admin words."""
        async with self._lock:
            if self._lists is None:
                self._lists, self._model = await asyncio.gather(
                    asyncio.to_thread(load_word_lists), asyncio.to_thread(load_model)
                )
            if self._stale:
                self._stale = False  # set before the read: a change during it marks it stale again
                self._rules = await self._words.words() if self._words else []
                self._scoped.clear()

    def words_changed(self) -> None:
        """Admin words changed in the store: read them again before the next check."""
        self._stale = True

    async def aclose(self) -> None:
        if self._guard is not None:
            await self._guard.close()

    async def check(
        self, text: str, direction: Direction, key: ConversationKey, system_prompt: str = ""
    ) -> Verdict:
        if self._lists is None or self._stale:
            await self.load()
        lists = self._lists_for(scope_of(key))
        if len(text) > OFFLOAD_CHARS:  # long: off the event loop, so other channels go on
            judged = await asyncio.to_thread(self._local, text, direction, lists, system_prompt)
        else:
            judged = self._local(text, direction, lists, system_prompt)
        if isinstance(judged, Verdict):
            return judged
        if self._guard is None:
            return verdict("classifier" if judged else "wordlist", {CLASSIFIER_CATEGORY: judged}, False)
        return await self._ask_guard(text, direction, {CLASSIFIER_CATEGORY: judged})

    def _local(
        self, text: str, direction: Direction, lists: WordLists, system_prompt: str
    ) -> Verdict | float:
        """The layers that run here (leak, word lists, classifier): a flagging verdict, or
        the classifier's score when none flagged. Pure CPU, safe in a worker thread."""
        canon = canonical(text)  # shared by the leak check and the word lists' views
        if direction == "output" and system_prompt and leaks(text, system_prompt, canon):
            return verdict("leak", {}, True)
        forms = views(text, canon)
        found = lists.match(forms, text)
        if found.flagged:
            return _list_verdict(found)
        score = self._classify(found.without_allowed(forms.main))
        if score >= self._config.threshold:
            return verdict("classifier", {CLASSIFIER_CATEGORY: score}, True, [CLASSIFIER_CATEGORY])
        return score

    def _lists_for(self, scope: str) -> WordLists:
        assert self._lists is not None
        lists = self._scoped.get(scope)
        if lists is None:
            rules = [r for r in self._rules if r.scope in (GLOBAL_SCOPE, scope)]
            lists = self._lists.with_admin(admin_entries(rules))
            self._scoped[scope] = lists
        return lists

    def _classify(self, text: str) -> float:
        """The English classifier's score, allowed words blanked out; 0 for text without
        Latin letters (it cannot read Chinese: every Chinese text scores like "")."""
        assert self._model is not None
        return self._model.score(text) if has_latin(text) else 0.0

    async def _ask_guard(self, text: str, direction: Direction, scores: dict[str, float]) -> Verdict:
        assert self._guard is not None
        result = await self._guard.judge(strip_invisible(text), direction)
        merged = {**scores}
        for name, value in _with_parents(result.categories, result.score).items():
            merged[name] = max(merged.get(name, 0.0), value)
        return verdict("guard", merged, result.flagged, result.categories)


def admin_entries(rules: Iterable[WordRule]) -> list[Entry]:
    return [make_entry(r.word, r.category, r.action, admin=True) for r in rules]


def _list_verdict(found: ListMatch) -> Verdict:
    categories = [e.category for e in found.blocked]
    layer = "admin" if found.by_admin else "wordlist"
    return verdict(layer, _with_parents(categories, 1.0), True, categories)
