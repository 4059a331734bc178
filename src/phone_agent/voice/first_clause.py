"""Start speaking a reply at its first clause instead of its first sentence.

Pipecat's TTS waits for a whole sentence (and the token after it) before it synthesises anything:
with an LLM streaming 40 tokens/s, "Sure, I can help you with that." costs ~225 ms before the TTS
even starts. ``FirstClauseAggregator`` hands the TTS a reply's first clause as soon as it is
complete ("Sure," after its comma; "Yes!" at once), then goes back to whole sentences for the rest
of the reply, which the TTS synthesises while the first clause plays.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

from pipecat.services.tts_service import TTSService
from pipecat.utils.text.base_text_aggregator import Aggregation, TextType
from pipecat.utils.text.simple_text_aggregator import SimpleTextAggregator

CLAUSE_MARKS = frozenset(",:—–")  # a clause is complete after one of these (after a letter)
IMMEDIATE_MARKS = frozenset("!?")  # unambiguous sentence ends: no need to see the next token

T = TypeVar("T", bound=TTSService)


class FirstClauseAggregator(SimpleTextAggregator):
    """Sentence aggregation, except that a reply's first clause is released as soon as it ends."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._released_first = False

    async def aggregate(self, text: str) -> AsyncIterator[Aggregation]:
        if self._released_first or self.aggregation_type == TextType.TOKEN:
            async for aggregation in super().aggregate(text):
                yield aggregation
            return
        for index, char in enumerate(text):
            if self._released_first:  # the rest of this chunk: plain sentences
                async for aggregation in super().aggregate(text[index:]):
                    yield aggregation
                return
            previous = self._text[-1:] if self._text else ""
            self._text += char
            result = await self._check_sentence_with_lookahead(char)
            if result is None and self._ends_first_clause(char, previous):
                result = Aggregation(text=self._text.strip(" "), type=TextType.SENTENCE)
                await super().reset()
            if result is not None:
                self._released_first = True
                yield result

    def _ends_first_clause(self, char: str, previous: str) -> bool:
        if not self._text.strip(" ,:—–!?"):
            return False
        if char in IMMEDIATE_MARKS:
            return True
        return char in CLAUSE_MARKS and previous.isalpha()  # "1,000" is not a clause

    async def flush(self) -> Aggregation | None:
        self._released_first = False  # the next reply starts with a first clause again
        return await super().flush()

    async def reset(self) -> None:
        self._released_first = False
        await super().reset()

    async def handle_interruption(self) -> None:
        self._released_first = False
        await super().handle_interruption()


def speak_from_first_clause(tts: T) -> T:
    """Make ``tts`` start each reply at its first clause (keeps its aggregation language)."""
    current = tts._text_aggregator
    if isinstance(current, SimpleTextAggregator) and not isinstance(current, FirstClauseAggregator):
        tts._text_aggregator = FirstClauseAggregator(
            aggregation_type=current.aggregation_type, language=current.language
        )
    return tts
