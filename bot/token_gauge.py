"""How far the offline token guess is from Kimi's own count, learned per conversation.

Kimi's tokenizer is not available offline, so bot/context.py guesses from characters. Every answer's first call
reports the prompt's real size (`usage.prompt_tokens`) and the estimate endpoint gives exact counts near the
limit; the smoothed ratio of real to guessed scales the guess for that conversation's next decisions. A thread
in Chinese is then not trimmed early, and a guess that turns out low is corrected instead of trusted.
"""

from __future__ import annotations

import math
from collections import OrderedDict

# Below this, a prompt is mostly fixed per-message overhead and says little about the text's ratio.
MIN_SAMPLE_TOKENS = 200
# A learned ratio is applied with this much to spare: an overflow costs a failed call, a slack a few tokens.
MARGIN = 1.05
RATIO_BOUNDS = (0.2, 3.0)


class TokenGauge:
    def __init__(self, *, capacity: int = 10_000, smoothing: float = 0.5) -> None:
        self._capacity = capacity
        self._smoothing = smoothing
        # Conversations seen recently; the oldest are forgotten and start again from the plain guess.
        self._ratios: OrderedDict[int, float] = OrderedDict()

    def observe(self, conversation_id: int, guessed: int, actual: int) -> None:
        if guessed < MIN_SAMPLE_TOKENS or actual <= 0:
            return
        ratio = min(max(actual / guessed, RATIO_BOUNDS[0]), RATIO_BOUNDS[1])
        previous = self._ratios.pop(conversation_id, None)
        self._ratios[conversation_id] = ratio if previous is None else previous + self._smoothing * (ratio - previous)
        while len(self._ratios) > self._capacity:
            self._ratios.popitem(last=False)

    def ratio(self, conversation_id: int) -> float | None:
        return self._ratios.get(conversation_id)

    def scale(self, conversation_id: int, guessed: int) -> int:
        """The guess corrected by what Kimi reported; the plain guess (which errs high) until then."""
        ratio = self._ratios.get(conversation_id)
        return guessed if ratio is None else math.ceil(guessed * ratio * MARGIN)
