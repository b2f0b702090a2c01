"""The moderation gate every user message and every reply passes.

`Gate` is the seam the pipeline calls; `LayeredGate` is Hearth's bilingual
filter (normalisation → word lists → English classifier → optional guard
model, plus the prompt-leak check on replies); `AllowAllGate` lets everything
through and says so in every verdict.
"""

from bot.moderation.base import AllowAllGate, Direction, Gate, WordsAware
from bot.moderation.gate import GateConfig, LayeredGate

__all__ = ["AllowAllGate", "Direction", "Gate", "GateConfig", "LayeredGate", "WordsAware"]
