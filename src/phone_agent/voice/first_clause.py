"""Start speaking a reply from the LLM's token stream instead of at its first sentence.

Pipecat's TTS waits for a whole sentence (and the token after it) before it synthesises anything:
with an LLM streaming 40 tokens/s, "Sure, I can help you with that." costs ~225 ms before the TTS
even starts, and a reply whose first sentence runs 20 words without a comma costs ~500 ms.
``FirstClauseAggregator`` hands the TTS a reply's first piece as soon as the first of these holds:

- its first clause is complete ("Sure," after its comma; "Yes!" or "Sure." at once);
- ``FIRST_WORDS`` words have arrived ("I can certainly help" of a sentence with no punctuation);
- ``FIRST_PIECE_SECS`` of tokens have gone by with at least ``MIN_TIMED_WORDS`` words (a slow stream).

A piece always ends at a word boundary (the TTS never gets half a word). The rest of the reply goes
by whole sentences (or ``LATER_WORDS`` words of a sentence that runs on, so a slow model's long
sentence does not leave the caller in silence), which the TTS synthesises while the first piece
plays: the ElevenLabs websocket takes them as partial text of the same context, so the voice carries
on in one intonation.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TypeVar

from pipecat.services.tts_service import TTSService
from pipecat.utils.text.base_text_aggregator import Aggregation, TextType
from pipecat.utils.text.simple_text_aggregator import SimpleTextAggregator

CLAUSE_MARKS = frozenset(",:—–")  # a clause is complete after one of these (after a letter)
IMMEDIATE_MARKS = frozenset("!?")  # unambiguous sentence ends: no need to see the next token
FIRST_WORDS = 4  # a first piece with no punctuation goes after this many words
FIRST_PIECE_SECS = 0.15  # ... or after this long since the reply's first token,
MIN_TIMED_WORDS = 2  # ... with at least this many words
LATER_WORDS = 10  # a later piece with no sentence end goes after this many words (speech keeps flowing)
# "Sure." ends a first piece at its period; these do not (the name or number follows)
ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "st", "no", "vs", "etc", "approx", "e.g", "i.e"})

T = TypeVar("T", bound=TTSService)


class FirstClauseAggregator(SimpleTextAggregator):
    """Sentence aggregation, except that a reply's first piece is released as soon as it ends (see above)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._released_first = False
        self._first_token_at: float | None = None  # monotonic time of the reply's first text

    async def aggregate(self, text: str) -> AsyncIterator[Aggregation]:
        if self.aggregation_type == TextType.TOKEN:
            async for aggregation in super().aggregate(text):
                yield aggregation
            return
        if self._first_token_at is None and text.strip():
            self._first_token_at = time.monotonic()
        for char in text:
            previous = self._text[-1:] if self._text else ""
            self._text += char
            result = await self._check_sentence_with_lookahead(char)
            if result is None and self._ends_piece(char, previous):
                result = Aggregation(text=self._text.strip(" "), type=TextType.SENTENCE)
                await super().reset()
            if result is not None:
                self._released_first = True
                # a piece ends with a space: the websocket TTS joins pieces as they come, and "I can"
                # + "certainly" must not become "I cancertainly"
                yield Aggregation(text=result.text.rstrip() + " ", type=result.type)

    def _ends_piece(self, char: str, previous: str) -> bool:
        if not self._released_first:
            return self._ends_first_clause(char, previous)
        # later pieces go by sentence, or by LATER_WORDS words of a sentence that runs on
        return char.isspace() and previous.isalnum() and len(self._text.split()) >= LATER_WORDS

    def _ends_first_clause(self, char: str, previous: str) -> bool:
        if not self._text.strip(" ,:—–!?."):
            return False
        if char in IMMEDIATE_MARKS:
            return True
        if char == ".":
            word = self._text[:-1].rsplit(None, 1)[-1] if self._text[:-1].strip() else ""
            return len(word) > 1 and word.isalpha() and word.lower() not in ABBREVIATIONS
        if char in CLAUSE_MARKS:
            return previous.isalpha()  # "1,000" is not a clause
        if char.isspace() and previous.isalnum():  # a word has just ended
            words = len(self._text.split())
            if words >= FIRST_WORDS:
                return True
            started = self._first_token_at
            return (
                words >= MIN_TIMED_WORDS
                and started is not None
                and (time.monotonic() - started >= FIRST_PIECE_SECS)
            )
        return False

    def _next_reply(self) -> None:
        self._released_first = False  # the next reply starts with a first piece again
        self._first_token_at = None

    async def flush(self) -> Aggregation | None:
        self._next_reply()
        return await super().flush()

    async def reset(self) -> None:
        self._next_reply()
        await super().reset()

    async def handle_interruption(self) -> None:
        self._next_reply()
        await super().handle_interruption()


def speak_from_first_clause(tts: T) -> T:
    """Make ``tts`` start each reply at its first clause (keeps its aggregation language)."""
    current = tts._text_aggregator
    if isinstance(current, SimpleTextAggregator) and not isinstance(current, FirstClauseAggregator):
        tts._text_aggregator = FirstClauseAggregator(
            aggregation_type=current.aggregation_type, language=current.language
        )
    return tts
