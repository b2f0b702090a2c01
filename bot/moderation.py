"""The moderation gate's place in the pipeline.

Every user message and every piece of a reply passes a `Gate` before anyone
sees it. The bilingual layered filter plugs in here; until it is configured,
`AllowAllGate` records a verdict for every message so the audit trail is whole.
"""

from __future__ import annotations

from typing import Literal, Protocol

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


class AllowAllGate:
    """Lets everything through, and says so in every verdict it records."""

    async def check(
        self, text: str, direction: Direction, key: ConversationKey, system_prompt: str = ""
    ) -> Verdict:
        return Verdict(flagged=False, layer="none", action="allow")
