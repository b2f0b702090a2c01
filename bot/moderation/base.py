"""The gate's contract, and the gate that lets everything through."""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

from bot.messages import ConversationKey, Verdict

Direction = Literal["input", "output"]


class Gate(Protocol):
    async def check(
        self, text: str, direction: Direction, key: ConversationKey, system_prompt: str = ""
    ) -> Verdict:
        """A verdict for `text`; must not block the event loop.

        For replies (`output`), `system_prompt` is the prompt the model was given,
        so a reply that leaks it can be caught.
        """
        ...


@runtime_checkable
class WordsAware(Protocol):
    """A gate that keeps admin words in memory and must hear when they change."""

    def words_changed(self) -> None: ...


class AllowAllGate:
    """Lets everything through, and says so in every verdict it records."""

    async def check(
        self, text: str, direction: Direction, key: ConversationKey, system_prompt: str = ""
    ) -> Verdict:
        return Verdict(flagged=False, layer="none", action="allow")
